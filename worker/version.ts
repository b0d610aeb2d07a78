import { version } from '../package.json';

/** The agent version each host reports: the package version it runs. */
export const AGENT_VERSION: string = version;
