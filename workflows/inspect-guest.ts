import type { GuestInfo } from '../domain/guest';
import { onHost } from './activity-proxies';
import { trackOperation } from './observability';

/**
 * Asks a VM's guest agent, on the host that runs it, for its hostname, OS and addresses. It
 * reads and changes nothing else, so it runs beside whatever operation holds `vm/<vmId>`.
 */
export async function inspectGuest(req: { vmId: string; host: string }): Promise<GuestInfo> {
  const op = trackOperation({ operation: 'inspect-guest', vm: req.vmId, hosts: [req.host] });
  op.phase('asking-guest-agent', `asking the guest agent of ${req.vmId} on ${req.host}`);
  const info = await onHost(req.host, {
    scheduleToStartTimeout: '20 seconds',
    startToCloseTimeout: '30 seconds',
    attempts: 1,
  }).guestInfo({ vmId: req.vmId });
  op.phase('done', `${req.vmId} runs ${info.os} as ${info.hostname}`);
  return info;
}

/** Reads the end of a VM's console log on the host that ran it last; like inspectGuest, it changes nothing. */
export async function readConsoleLog(req: {
  vmId: string;
  host: string;
  bytes: number;
}): Promise<{ text: string }> {
  return onHost(req.host, {
    scheduleToStartTimeout: '20 seconds',
    startToCloseTimeout: '30 seconds',
    attempts: 1,
  }).consoleLog({ vmId: req.vmId, bytes: req.bytes });
}

/** Captures a VM's screen on the host that runs it; like inspectGuest, it changes nothing. */
export async function screenshotGuest(req: {
  vmId: string;
  host: string;
}): Promise<{ pngBase64: string; width: number; height: number }> {
  const op = trackOperation({ operation: 'screenshot', vm: req.vmId, hosts: [req.host] });
  op.phase('capturing', `capturing the screen of ${req.vmId} on ${req.host}`);
  const shot = await onHost(req.host, {
    scheduleToStartTimeout: '20 seconds',
    startToCloseTimeout: '30 seconds',
    attempts: 1,
  }).screenshot({ vmId: req.vmId });
  op.phase('done', `${shot.width}×${shot.height} screenshot of ${req.vmId}`);
  return shot;
}
