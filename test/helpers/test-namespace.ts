import { Connection } from '@temporalio/client';
import { msToTs } from '@temporalio/common/lib/time';
import { temporal } from '@temporalio/proto';
import type { Config } from '../../domain/config';
import { allSearchAttributes } from '../../domain/names';

const { IndexedValueType } = temporal.api.enums.v1;
const indexedType: Record<string, temporal.api.enums.v1.IndexedValueType> = {
  KEYWORD: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
  KEYWORD_LIST: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD_LIST,
};

/**
 * Gives a test file its own Temporal namespace, with virtflow's search attributes, on the shared
 * dev server. Task queues and workflow ids live inside a namespace, so two files can both run a
 * `host-a` agent, or a `vm/app` workflow, at the same time without taking each other's tasks.
 */
export async function ensureTestNamespace(config: Config): Promise<void> {
  const namespace = config.temporal.namespace;
  const connection = await Connection.connect({ address: config.temporal.address });
  try {
    await connection.workflowService
      .registerNamespace({ namespace, workflowExecutionRetentionPeriod: msToTs('1 day') })
      .catch((err: { code?: number }) => {
        if (err.code !== 6 /* ALREADY_EXISTS: an earlier run of the file */) throw err;
      });
    await connection.operatorService.addSearchAttributes({
      namespace,
      searchAttributes: Object.fromEntries(allSearchAttributes.map((k) => [k.name, indexedType[k.type]])),
    });
    // The server's namespace cache refreshes on its own clock: wait until a call in the namespace works.
    const deadline = Date.now() + 30_000;
    for (;;) {
      try {
        const { customAttributes } = await connection.operatorService.listSearchAttributes({ namespace });
        if (allSearchAttributes.every((k) => customAttributes?.[k.name] !== undefined)) {
          await connection.workflowService.listWorkflowExecutions({ namespace, pageSize: 1 });
          return;
        }
      } catch (err) {
        if (Date.now() > deadline) throw err;
      }
      if (Date.now() > deadline) throw new Error(`namespace ${namespace} did not become usable within 30 s`);
      await new Promise((r) => setTimeout(r, 200));
    }
  } finally {
    await connection.close();
  }
}
