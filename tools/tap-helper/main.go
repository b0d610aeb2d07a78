// Command tap-helper opens one named tap device for a QEMU guest's NIC and hands its file
// descriptor to QEMU, the way qemu-bridge-helper does (QEMU's `-netdev tap,helper=…,br=…`
// runs it with `--use-vnet --fd=N --br=BRIDGE` appended). virtflow's host agent runs it inside
// the host's network namespace (`ip netns exec NS tap-helper TAP`), so the tap and the bridge
// live there while QEMU itself stays where it is. The tap is not persistent: it disappears
// when the QEMU process that holds it exits, so a VM leaving a host takes its tap with it.
package main

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"unsafe"
)

const (
	tunSetIff  = 0x400454ca
	iffTap     = 0x0002
	iffNoPi    = 0x1000
	iffVnetHdr = 0x4000
)

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "tap-helper: "+format+"\n", args...)
	os.Exit(1)
}

func main() {
	if len(os.Args) < 2 {
		fail("usage: tap-helper TAP [--use-vnet] --fd=N --br=BRIDGE")
	}
	tap := os.Args[1]
	if len(tap) == 0 || len(tap) > 15 {
		fail("tap name %q must be 1 to 15 characters", tap)
	}
	fd, bridge, vnet := -1, "", false
	for _, a := range os.Args[2:] {
		switch {
		case a == "--use-vnet":
			vnet = true
		case strings.HasPrefix(a, "--fd="):
			n, err := strconv.Atoi(strings.TrimPrefix(a, "--fd="))
			if err != nil {
				fail("bad %s", a)
			}
			fd = n
		case strings.HasPrefix(a, "--br="):
			bridge = strings.TrimPrefix(a, "--br=")
		default:
			fail("unknown argument %q", a)
		}
	}
	if fd < 0 || bridge == "" {
		fail("QEMU passes --fd=N and --br=BRIDGE")
	}

	tun, err := syscall.Open("/dev/net/tun", syscall.O_RDWR|syscall.O_CLOEXEC, 0)
	if err != nil {
		fail("open /dev/net/tun: %v", err)
	}
	// struct ifreq: the name, then the flags (a short) in the union.
	var ifr [40]byte
	copy(ifr[:16], tap)
	flags := uint16(iffTap | iffNoPi)
	if vnet {
		flags |= iffVnetHdr
	}
	*(*uint16)(unsafe.Pointer(&ifr[16])) = flags
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, uintptr(tun), tunSetIff, uintptr(unsafe.Pointer(&ifr[0]))); e != 0 {
		fail("TUNSETIFF %s: %v", tap, e)
	}
	if out, err := exec.Command("ip", "link", "set", tap, "master", bridge, "up").CombinedOutput(); err != nil {
		fail("attaching %s to %s: %v: %s", tap, bridge, err, strings.TrimSpace(string(out)))
	}
	rights := syscall.UnixRights(tun)
	if err := syscall.Sendmsg(fd, []byte{0}, rights, nil, 0); err != nil {
		fail("passing the tap to QEMU: %v", err)
	}
}
