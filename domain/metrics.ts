import {
  noopMetricMeter,
  type MetricCounter,
  type MetricGauge,
  type MetricHistogram,
  type MetricMeter,
} from '@temporalio/common';

/**
 * virtflow's own metrics. They go out through the Temporal SDK runtime's meter, so a worker
 * process has one Prometheus endpoint (VIRTFLOW_METRICS_ADDRESS) with the SDK's metrics and
 * these side by side. Until a worker binds the runtime's meter they go nowhere, so the CLI and
 * tests that write the inventory directly record nothing. Names and labels: docs/metrics.md.
 */
function instruments(meter: MetricMeter) {
  return {
    operationsStarted: meter.createCounter(
      'virtflow_operations_started_total',
      'operations',
      'Workflow runs started, by kind (the workflow type)',
    ),
    operationsEnded: meter.createCounter(
      'virtflow_operations_ended_total',
      'operations',
      'Workflow runs ended, by kind and result (completed, failed, continued)',
    ),
    outcomes: meter.createCounter(
      'virtflow_operation_outcomes_total',
      'operations',
      'Audit outcomes of operations, by operation and outcome (completed, failed, rolled-back)',
    ),
    migrationDuration: meter.createHistogram(
      'virtflow_migration_duration_ms',
      'int',
      'ms',
      'Live migrations: start to commit',
    ),
    migrationDowntime: meter.createHistogram(
      'virtflow_migration_downtime_ms',
      'int',
      'ms',
      'Live migrations: the guest paused at switch-over',
    ),
    migrationBytes: meter.createHistogram(
      'virtflow_migration_transferred_bytes',
      'int',
      'bytes',
      'Live migrations: memory sent',
    ),
    backupBytes: meter.createHistogram('virtflow_backup_size_bytes', 'int', 'bytes', 'Backups: file size'),
    backupDuration: meter.createHistogram(
      'virtflow_backup_duration_ms',
      'int',
      'ms',
      'Backups: job start to catalogue',
    ),
    newestBackupAge: meter.createGauge(
      'virtflow_backup_newest_age_seconds',
      'float',
      's',
      'Age of the newest good backup, by vm',
    ),
    hostMemory: meter.createGauge(
      'virtflow_host_memory_mib',
      'int',
      'MiB',
      'Host memory by host and kind (allocatable, used, free)',
    ),
    hostVcpus: meter.createGauge(
      'virtflow_host_vcpus',
      'int',
      'vcpus',
      'Host vCPUs by host and kind (allocatable, used, free)',
    ),
    hosts: meter.createGauge('virtflow_hosts', 'int', 'hosts', 'Hosts by liveness state'),
    driftOpen: meter.createGauge('virtflow_drift_open', 'int', 'findings', 'Open drift findings, by kind'),
  };
}

let current: ReturnType<typeof instruments> = instruments(noopMetricMeter);

/** Binds virtflow's metrics to a worker process's runtime meter (worker/metrics-endpoint.ts). */
export function bindMetricMeter(meter: MetricMeter): void {
  current = instruments(meter);
}

/** The instruments, as bound now (read at each use: a worker binds after modules load). */
export const metrics = (): ReturnType<typeof instruments> => current;

export type { MetricCounter, MetricGauge, MetricHistogram };
