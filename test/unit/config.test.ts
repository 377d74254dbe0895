// Settings refused at start, by name, when they cannot work together.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError, loadConfig } from '../../server/config.ts';

describe('configuration', () => {
  const github = { githubToken: 'ghp_x', repository: 'o/r' };

  it('GitHub with the dashboard on every interface and no public address: refused, naming NATOPS_PUBLIC_URL', () => {
    for (const where of [{ listen: '0.0.0.0:8080' }, { dashboardListen: '0.0.0.0:8081' }, { listen: '[::]:8080' }])
      assert.throws(
        () => loadConfig({ ...github, ...where }, {}),
        (e: unknown) => e instanceof ConfigError && /NATOPS_PUBLIC_URL: GitHub's statuses link/.test(e.message),
        JSON.stringify(where),
      );
  });

  it('a public address, a specific one, or no GitHub: accepted', () => {
    assert.equal(
      loadConfig({ ...github, listen: '0.0.0.0:8080', publicUrl: 'https://natops.example' }, {}).publicUrl,
      'https://natops.example',
    );
    assert.equal(loadConfig({ ...github, listen: '10.0.0.5:8080' }, {}).listen, '10.0.0.5:8080');
    assert.equal(loadConfig({ listen: '0.0.0.0:8080' }, {}).listen, '0.0.0.0:8080');
  });
});
