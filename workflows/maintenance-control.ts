import { defineUpdate } from '@temporalio/workflow';

/**
 * What an operator tells a host that is blocked entering maintenance: try the unmovable VMs
 * again (after freeing capacity, say), or allow them to be stopped.
 */
export const resolveBlocked = defineUpdate<string, [{ action: 'retry' | 'stop-them' }]>('resolveBlocked');
