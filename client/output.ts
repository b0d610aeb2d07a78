/** How the CLI prints: `--json` for machines, aligned tables for people. */
export interface OutputOptions {
  json?: boolean;
}

export function printTable(rows: Record<string, unknown>[], columns: string[]): void {
  if (rows.length === 0) {
    console.log('(none)');
    return;
  }
  const cells = rows.map((r) => columns.map((c) => formatCell(r[c])));
  const widths = columns.map((c, i) => Math.max(c.length, ...cells.map((row) => row[i].length)));
  const line = (values: string[]) =>
    values
      .map((v, i) => v.padEnd(widths[i]))
      .join('  ')
      .trimEnd();
  console.log(line(columns.map((c) => c.toUpperCase())));
  for (const row of cells) console.log(line(row));
}

function formatCell(v: unknown): string {
  if (v === undefined || v === null) return '-';
  if (v instanceof Date) return v.toISOString().replace(/\.\d+Z$/, 'Z');
  if (Array.isArray(v)) return v.join(',');
  return String(v);
}

/** Prints `value` as JSON when asked, otherwise lets `human` print it. */
export function emit<T>(opts: OutputOptions, value: T, human: (v: T) => void): void {
  if (opts.json) console.log(JSON.stringify(value, null, 2));
  else human(value);
}

/** Key: value lines for one document. */
export function printFields(fields: Record<string, unknown>): void {
  const width = Math.max(...Object.keys(fields).map((k) => k.length));
  for (const [k, v] of Object.entries(fields)) console.log(`${k.padEnd(width)}  ${formatCell(v)}`);
}
