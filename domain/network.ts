import { z } from 'zod';
import { idSchema } from './ids';

/**
 * Networks VMs attach to: an L2 segment (`bridge`: untagged on each host's named uplink, or, with
 * no uplink, confined to each host) or a VLAN on each host's named uplink (`vlan`), with an IPv4
 * subnet and the pool virtflow hands addresses out of. Everything here is pure: the client, the
 * workflows and the host agent parse a network with the same schema.
 */

/** An IPv4 address as a 32-bit number; undefined for anything that is not a dotted quad. */
export function ipv4ToInt(ip: string): number | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(ip);
  if (!m) return undefined;
  const octets = m.slice(1).map(Number);
  if (octets.some((o, i) => o > 255 || (m[i + 1].length > 1 && m[i + 1].startsWith('0')))) return undefined;
  return ((octets[0] << 24) | (octets[1] << 16) | (octets[2] << 8) | octets[3]) >>> 0;
}

export function intToIpv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

/** A subnet: its first address, its prefix length, and its first and last addresses. */
export interface Subnet {
  base: number;
  prefix: number;
  first: number;
  last: number;
}

/** `10.20.0.0/24` as a subnet, or why it is not one (a host address with a prefix is not a network). */
export function parseCidr(cidr: string): Subnet | string {
  const m = /^([^/]+)\/(\d{1,2})$/.exec(cidr);
  if (!m) return 'must be an IPv4 network such as 10.20.0.0/24';
  const base = ipv4ToInt(m[1]);
  const prefix = Number(m[2]);
  if (base === undefined) return `${m[1]} is not an IPv4 address`;
  if (prefix < 8 || prefix > 30) return 'the prefix length must be 8 to 30 (a network with room for hosts)';
  const size = 2 ** (32 - prefix);
  if (base % size !== 0)
    return `${cidr} is not a network address: did you mean ${intToIpv4(base - (base % size))}/${prefix}?`;
  return { base, prefix, first: base, last: base + size - 1 };
}

/** Addresses a network may hand to VMs: inside the subnet, neither its network nor its broadcast address. */
const usable = (s: Subnet, ip: number) => ip > s.first && ip < s.last;

const ipv4Schema = z
  .string()
  .refine((v) => ipv4ToInt(v) !== undefined, 'must be an IPv4 address such as 10.20.0.1');

/** Linux interface names: at most 15 characters, no slash, no whitespace, not `.` or `..`. */
export const interfaceNameSchema = z
  .string()
  .regex(
    /^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$/,
    'must be a network interface name (at most 15 letters, digits, ".", "_" or "-")',
  );

export const networkSpecSchema = z
  .object({
    name: idSchema,
    kind: z.enum(['bridge', 'vlan']).default('bridge'),
    /** `vlan` only: the VLAN id tagged on the uplink. */
    vlanId: z.number().int().min(1, 'VLAN ids are 1 to 4094').max(4094, 'VLAN ids are 1 to 4094').optional(),
    /**
     * The host interface that carries the network between hosts (the same name on every host):
     * tagged for `vlan`, untagged for `bridge`. A `bridge` without one stays inside each host.
     */
    uplink: interfaceNameSchema.optional(),
    cidr: z.string(),
    gateway: ipv4Schema.optional(),
    /** The addresses virtflow hands out, first to last; by default the whole subnet but the gateway. */
    pool: z.object({ first: ipv4Schema, last: ipv4Schema }).optional(),
    dns: z.array(ipv4Schema).max(3, 'at most 3 DNS servers').default([]),
  })
  .superRefine((n, ctx) => {
    const fail = (path: string, message: string) => ctx.addIssue({ code: 'custom', path: [path], message });
    if (n.kind === 'vlan' && n.vlanId === undefined) fail('vlanId', 'a vlan network needs its VLAN id');
    if (n.kind === 'vlan' && n.uplink === undefined)
      fail('uplink', 'a vlan network needs the uplink that carries it');
    if (n.kind === 'bridge' && n.vlanId !== undefined) fail('vlanId', 'only a vlan network has a VLAN id');
    const subnet = parseCidr(n.cidr);
    if (typeof subnet === 'string') return fail('cidr', subnet);
    const inside = (ip: string) => usable(subnet, ipv4ToInt(ip)!);
    if (n.gateway && !inside(n.gateway)) fail('gateway', `${n.gateway} is not a host address of ${n.cidr}`);
    if (n.pool) {
      const [first, last] = [ipv4ToInt(n.pool.first)!, ipv4ToInt(n.pool.last)!];
      if (!inside(n.pool.first)) fail('pool', `${n.pool.first} is not a host address of ${n.cidr}`);
      else if (!inside(n.pool.last)) fail('pool', `${n.pool.last} is not a host address of ${n.cidr}`);
      else if (first > last) fail('pool', `${n.pool.first} comes after ${n.pool.last}`);
    }
  });
export type NetworkSpec = z.output<typeof networkSpecSchema>;
export type NetworkSpecInput = z.input<typeof networkSpecSchema>;

/** The addresses a network hands out, as numbers: its pool, or the whole subnet, never the gateway. */
export function poolRange(n: NetworkSpec): { first: number; last: number; gateway?: number } {
  const subnet = parseCidr(n.cidr) as Subnet;
  const gateway = n.gateway ? ipv4ToInt(n.gateway) : undefined;
  return n.pool
    ? { first: ipv4ToInt(n.pool.first)!, last: ipv4ToInt(n.pool.last)!, gateway }
    : { first: subnet.first + 1, last: subnet.last - 1, gateway };
}

/**
 * Why a new network cannot be served beside existing ones, or undefined. Two networks whose
 * subnets overlap would hand out the same addresses to guests that may end up on one L2
 * segment; a VLAN id is used by one network per uplink.
 */
export function conflictWith(
  n: NetworkSpec,
  others: NetworkSpec[],
): { field: string; message: string } | undefined {
  const mine = parseCidr(n.cidr) as Subnet;
  for (const o of others) {
    if (o.name === n.name) return { field: 'name', message: `network ${n.name} exists` };
    const theirs = parseCidr(o.cidr) as Subnet;
    if (mine.first <= theirs.last && theirs.first <= mine.last)
      return { field: 'cidr', message: `${n.cidr} overlaps ${o.cidr} of network ${o.name}` };
    if (n.kind === 'vlan' && o.kind === 'vlan' && n.vlanId === o.vlanId && n.uplink === o.uplink)
      return { field: 'vlanId', message: `VLAN ${n.vlanId} on ${n.uplink} is network ${o.name}` };
    // An uplink's untagged frames belong to one segment.
    if (n.kind === 'bridge' && o.kind === 'bridge' && n.uplink !== undefined && n.uplink === o.uplink)
      return { field: 'uplink', message: `the untagged traffic of ${n.uplink} is network ${o.name}` };
  }
  return undefined;
}

/**
 * virtflow's MAC prefix: locally administered (bit 1 of the first octet set) and unicast (bit 0
 * clear), so it never collides with a vendor's address; the last three octets are allocated.
 */
export const MAC_PREFIX = '0a:76:66';

export function macFor(n: number): string {
  const hex = (n & 0xffffff).toString(16).padStart(6, '0');
  return `${MAC_PREFIX}:${hex.slice(0, 2)}:${hex.slice(2, 4)}:${hex.slice(4, 6)}`;
}

/** A NIC a VM asks for: the network, and the address it wants (the pool's next free one if absent). */
export const nicRequestSchema = z.object({ network: idSchema, ip: ipv4Schema.optional() });
export type NicRequest = z.output<typeof nicRequestSchema>;

/** A VM has at most this many NICs (PCI slots 0x18 to 0x1f). */
export const MAX_NICS = 8;

/** A VM's NICs as asked for: one per network, at most 8. */
export const nicRequestsSchema = z
  .array(nicRequestSchema)
  .max(MAX_NICS, `at most ${MAX_NICS} NICs`)
  .superRefine((nics, ctx) => {
    const seen = new Set<string>();
    nics.forEach((n, i) => {
      if (seen.has(n.network))
        ctx.addIssue({
          code: 'custom',
          path: [i, 'network'],
          message: `network ${n.network} is listed twice: a VM has one NIC per network`,
        });
      seen.add(n.network);
    });
  });

/** What a host agent needs to attach one NIC, and what the guest is told about it (its seed). */
export const nicConfigSchema = z.object({
  network: idSchema,
  mac: z.string().regex(/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/, 'must be a MAC address such as 0a:76:66:12:34:56'),
  ip: ipv4Schema,
  prefix: z.number().int().min(8).max(30),
  gateway: ipv4Schema.optional(),
  dns: z.array(ipv4Schema).max(3).default([]),
  kind: z.enum(['bridge', 'vlan']),
  vlanId: z.number().int().min(1).max(4094).optional(),
  uplink: interfaceNameSchema.optional(),
  /**
   * The NIC's fixed PCI slot among a VM's NICs (0-7): a migration's destination must lay the
   * devices out exactly as the source has them, also after NICs were added and removed live.
   */
  slot: z
    .number()
    .int()
    .min(0)
    .max(MAX_NICS - 1),
});
export type NicConfig = z.output<typeof nicConfigSchema>;

/** The lowest PCI slot none of a VM's NICs has, or undefined when all are taken. */
export function freeNicSlot(nics: Pick<NicConfig, 'slot'>[]): number | undefined {
  for (let slot = 0; slot < MAX_NICS; slot++) if (!nics.some((n) => n.slot === slot)) return slot;
  return undefined;
}

/** A NIC's configuration on a network, for the address the VM was given. */
export function nicConfig(spec: NetworkSpec, mac: string, ip: string, slot: number): NicConfig {
  const { prefix } = parseCidr(spec.cidr) as Subnet;
  return {
    slot,
    network: spec.name,
    mac,
    ip,
    prefix,
    gateway: spec.gateway,
    dns: spec.dns,
    kind: spec.kind,
    vlanId: spec.vlanId,
    uplink: spec.uplink,
  };
}

/** 32-bit FNV-1a, as 8 hex digits: short, stable interface names from long network names. */
function shortHash(s: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return h.toString(16).padStart(8, '0');
}

/**
 * Host interface names of a network and a NIC (Linux allows 15 characters; network names are
 * longer). Fixed by the network's name and the NIC's MAC, so every host and every restarted
 * agent finds the same ones, and the reconciler can tell whose an interface is.
 */
export const hostInterfaceNames = {
  bridge: (network: string) => `vfb${shortHash(network)}`,
  vlan: (network: string) => `vfv${shortHash(network)}`,
  /** Where a kernel without VLAN devices has none: the user-space tagger's end of a veth pair. */
  vlanPort: (network: string) => `vfw${shortHash(network)}`,
  tap: (mac: string) => `vft${mac.split(':').slice(2).join('')}`,
};

/** What a host offers networks: absent when its agent serves none (no namespace or uplink given). */
export interface HostNetworking {
  uplinks: string[];
}

/** Why a host cannot carry a network, or undefined when it can. */
export function cannotServe(
  host: HostNetworking | undefined,
  n: { network: string; uplink?: string },
): string | undefined {
  if (!host) return `serves no networks (its agent was started without networking), needs ${n.network}`;
  if (n.uplink && !host.uplinks.includes(n.uplink))
    return `has no uplink ${n.uplink} for network ${n.network} (its uplinks: ${host.uplinks.join(', ') || 'none'})`;
  return undefined;
}

/**
 * The NoCloud network configuration (version 2, as cloud-init reads it) for a VM's NICs: static
 * addresses matched by MAC, so the guest needs no DHCP server. One key per line, in this order,
 * so the local test guest's init reads it with sed as well.
 */
export function networkConfigYaml(nics: NicConfig[]): string {
  const lines = ['version: 2', 'ethernets:'];
  // One default route: through the first NIC whose network has a gateway.
  const routed = nics.findIndex((n) => n.gateway);
  nics.forEach((n, i) => {
    lines.push(
      `  nic${i}:`,
      '    match:',
      `      macaddress: "${n.mac}"`,
      `    set-name: eth${i}`,
      '    addresses:',
      `      - "${n.ip}/${n.prefix}"`,
    );
    if (i === routed) lines.push('    routes:', '      - to: "0.0.0.0/0"', `        via: "${n.gateway}"`);
    if (n.dns.length)
      lines.push('    nameservers:', '      addresses:', ...n.dns.map((d) => `        - "${d}"`));
  });
  return lines.join('\n') + '\n';
}

/** One NIC as configured, beside what the guest's agent reports on the interface with its MAC. */
export interface NicView {
  network: string;
  mac: string;
  configured: string;
  /** The guest's IPv4 addresses on that interface; undefined when the guest was not asked. */
  reported?: string[];
  /** Why configured and reported differ; undefined when they agree (or the guest was not asked). */
  drift?: string;
}

/**
 * Compares a VM's NICs with the guest's own report (`guest-network-get-interfaces`): each NIC's
 * interface is found by its MAC and must carry its configured address. A difference is drift.
 */
export function nicViews(
  nics: NicConfig[],
  reported?: { mac?: string; address: string; prefix: number }[],
): NicView[] {
  return nics.map((n) => {
    const configured = `${n.ip}/${n.prefix}`;
    if (!reported) return { network: n.network, mac: n.mac, configured };
    const mine = reported
      .filter((a) => a.mac?.toLowerCase() === n.mac && !a.address.includes(':'))
      .map((a) => `${a.address}/${a.prefix}`);
    const drift = mine.includes(configured)
      ? undefined
      : mine.length === 0
        ? `the guest reports no address on the NIC with MAC ${n.mac} (configured ${configured})`
        : `the guest reports ${mine.join(', ')} on the NIC with MAC ${n.mac}, not ${configured}`;
    return { network: n.network, mac: n.mac, configured, reported: mine, drift };
  });
}
