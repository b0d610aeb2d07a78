import pino from 'pino';
import { loadConfig } from './config';

/** The structured logger every process uses; children carry host, VM and workflow ids. */
export const logger = pino({ level: loadConfig().logLevel, base: { pid: process.pid } });
