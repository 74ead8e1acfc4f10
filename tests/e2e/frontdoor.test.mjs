// What a new user following the README meets: defects found by walking it
// top to bottom (run.sh, the tour, channels, cluster, CLI, metrics, admin,
// reload, TLS, coming from AWS), each shown as the user would see it.

import {
  test, assert, startPair, connectWithId, mgmtRequest,
} from './helpers.mjs';

/** The value of one series line of the exposition, 0 when absent. */
function sample(text, line) {
  const m = text.split('\n').find((l) => l.startsWith(line + ' '));
  return m ? Number(m.slice(line.length + 1)) : 0;
}

test('metrics: a channel join (PUT) counts as op="other", not as a /metrics scrape', async () => {
  const { backend, gw } = await startPair();
  const { id } = await connectWithId(gw, backend);
  for (let i = 0; i < 3; i++) {
    const r = await mgmtRequest(gw, 'PUT', `/dev/@connections/${id}/channels/room-${i}`);
    assert.equal(r.status, 204, r.text);
  }
  const r = await mgmtRequest(gw, 'GET', '/metrics');
  assert.equal(r.status, 200);
  assert.equal(sample(r.text, 'wsgate_management_requests_total{op="metrics",status="204"}'), 0,
    'a PUT is not a scrape');
  assert.equal(sample(r.text, 'wsgate_management_requests_total{op="other",status="204"}'), 3);
});
