// Command vlan-port joins one VLAN of an uplink to one network port, in user space: frames that
// arrive on UPLINK tagged VID leave PORT untagged, and frames that arrive on PORT leave UPLINK
// tagged VID. It is what an 802.1Q sub-interface (UPLINK.VID) does in the kernel, for hosts
// whose kernel has no VLAN devices; virtflow's host agent uses the kernel's when it can.
//
// Usage: vlan-port UPLINK VID PORT. Runs until either interface goes away.
package main

import (
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"strconv"
	"syscall"
)

const (
	ethPAll           = 0x0003
	ethP8021Q         = 0x8100
	solPacket         = 263
	packetAuxdata     = 8
	packetOutgoing    = 4
	tpStatusVlanValid = 1 << 4
)

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "vlan-port: "+format+"\n", args...)
	os.Exit(1)
}

// A packet socket that hears every frame of one interface, with the VLAN tag the kernel took
// off it (PACKET_AUXDATA).
func open(name string) (int, int) {
	ifc, err := net.InterfaceByName(name)
	if err != nil {
		fail("%s: %v", name, err)
	}
	fd, err := syscall.Socket(syscall.AF_PACKET, syscall.SOCK_RAW, int(htons(ethPAll)))
	if err != nil {
		fail("packet socket: %v", err)
	}
	if err := syscall.Bind(fd, &syscall.SockaddrLinklayer{Protocol: htons(ethPAll), Ifindex: ifc.Index}); err != nil {
		fail("bind %s: %v", name, err)
	}
	if err := syscall.SetsockoptInt(fd, solPacket, packetAuxdata, 1); err != nil {
		fail("PACKET_AUXDATA on %s: %v", name, err)
	}
	return fd, ifc.Index
}

// One incoming frame and its VLAN id (-1 when untagged); ok is false for frames this host sent.
func receive(fd int, buf, oob []byte) (frame []byte, vid int, ok bool) {
	n, oobn, _, from, err := syscall.Recvmsg(fd, buf, oob, 0)
	if err != nil {
		fail("receive: %v", err)
	}
	if ll, isLL := from.(*syscall.SockaddrLinklayer); isLL && ll.Pkttype == packetOutgoing {
		return nil, 0, false
	}
	frame, vid = buf[:n], -1
	msgs, _ := syscall.ParseSocketControlMessage(oob[:oobn])
	for _, m := range msgs {
		if m.Header.Level == solPacket && m.Header.Type == packetAuxdata && len(m.Data) >= 20 {
			status := binary.LittleEndian.Uint32(m.Data[0:4])
			if status&tpStatusVlanValid != 0 {
				vid = int(binary.LittleEndian.Uint16(m.Data[16:18]) & 0x0fff)
			}
		}
	}
	// A tag the kernel left in the frame itself.
	if vid < 0 && n >= 18 && binary.BigEndian.Uint16(frame[12:14]) == ethP8021Q {
		vid = int(binary.BigEndian.Uint16(frame[14:16]) & 0x0fff)
		frame = append(frame[:12:12], frame[16:]...)
	}
	return frame, vid, true
}

func main() {
	if len(os.Args) != 4 {
		fail("usage: vlan-port UPLINK VID PORT")
	}
	vid, err := strconv.Atoi(os.Args[2])
	if err != nil || vid < 1 || vid > 4094 {
		fail("VID must be 1 to 4094, got %q", os.Args[2])
	}
	uplink, _ := open(os.Args[1])
	port, _ := open(os.Args[3])

	// UPLINK -> PORT: only this VLAN's frames, untagged.
	go func() {
		buf, oob := make([]byte, 65536), make([]byte, 256)
		for {
			frame, v, ok := receive(uplink, buf, oob)
			if ok && v == vid {
				if _, err := syscall.Write(port, frame); err != nil && err != syscall.ENOBUFS {
					fail("write %s: %v", os.Args[3], err)
				}
			}
		}
	}()
	// PORT -> UPLINK: untagged frames, tagged with this VLAN.
	buf, oob := make([]byte, 65536), make([]byte, 256)
	tagged := make([]byte, 65536+4)
	for {
		frame, v, ok := receive(port, buf, oob)
		if !ok || v >= 0 || len(frame) < 14 {
			continue
		}
		copy(tagged[:12], frame[:12])
		binary.BigEndian.PutUint16(tagged[12:14], ethP8021Q)
		binary.BigEndian.PutUint16(tagged[14:16], uint16(vid))
		n := copy(tagged[16:], frame[12:])
		if _, err := syscall.Write(uplink, tagged[:16+n]); err != nil && err != syscall.ENOBUFS {
			fail("write %s: %v", os.Args[1], err)
		}
	}
}
