import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfig } from '../../domain/config';

/** virtflow.yaml (VIRTFLOW_CONFIG): read, validated by field, overridden by the environment. */
describe('the configuration file', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vf-config-'));
  const write = (name: string, text: string) => {
    const file = path.join(dir, name);
    fs.writeFileSync(file, text);
    return file;
  };

  test('its settings load, a secret comes from its file, and the environment wins over the file', () => {
    const secret = write('mongo-uri', 'mongodb://virtflow:s3cret@db.example:27017/\n');
    const file = write(
      'virtflow.yaml',
      [
        'temporal:',
        '  address: temporal.example:7233',
        '  namespace: prod',
        'inventory:',
        `  uriFile: ${secret}`,
        '  database: fleet',
        'dataDir: /srv/virtflow',
        'metrics:',
        '  address: 0.0.0.0:9464',
        'ha:',
        '  maxLostFraction: 0.25',
      ].join('\n'),
    );
    const config = loadConfig({ VIRTFLOW_CONFIG: file, TEMPORAL_NAMESPACE: 'staging' });
    expect(config.temporal).toMatchObject({ address: 'temporal.example:7233', namespace: 'staging' });
    expect(config.mongo).toMatchObject({
      uri: 'mongodb://virtflow:s3cret@db.example:27017/',
      dbName: 'fleet',
    });
    expect(config.dataDir).toBe('/srv/virtflow');
    expect(config.metrics.address).toBe('0.0.0.0:9464');
    expect(config.ha.maxLostFraction).toBe(0.25);
  });

  test('the example shipped for deployments is valid', () => {
    const example = path.join(__dirname, '../../deploy/systemd/virtflow.yaml.example');
    const config = loadConfig({ VIRTFLOW_CONFIG: example, MONGODB_URI: 'mongodb://db.example/' });
    expect(config.temporal.namespace).toBe('virtflow');
  });

  test.each([
    [
      'an unknown key, by its path',
      'temporal:\n  adress: x:7233\n',
      /temporal\.adress: is not a setting virtflow knows/,
    ],
    ['a value of the wrong type', 'metrics:\n  fleetIntervalSec: often\n', /metrics\.fleetIntervalSec: /],
    ['a relative data directory', 'dataDir: data\n', /dataDir: must be an absolute path/],
    [
      'both a URI and its file',
      'inventory:\n  uri: mongodb://a/\n  uriFile: /etc/virtflow/uri\n',
      /inventory: give uri or uriFile, not both/,
    ],
    [
      'a secret file that is missing',
      'inventory:\n  uriFile: /nonexistent/uri\n',
      /inventory\.uriFile: cannot read/,
    ],
    [
      'a value the environment schema refuses',
      'metrics:\n  address: nowhere\n',
      /VIRTFLOW_METRICS_ADDRESS: must be host:port/,
    ],
    ['YAML that does not parse', 'temporal: [\n', /invalid configuration file .*virtflow-bad/],
  ])('refuses %s', (_what, text, error) => {
    expect(() => loadConfig({ VIRTFLOW_CONFIG: write('virtflow-bad.yaml', text) })).toThrow(error);
  });
});
