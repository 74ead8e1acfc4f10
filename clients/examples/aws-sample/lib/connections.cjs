// The connections "table": one file per connection ID in a folder, so
// that the three functions (three processes, as three Lambdas would be)
// share it. On AWS this is the DynamoDB table of the template.
'use strict';
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

function dir() {
  const d = process.env.CONNECTIONS_DIR || path.join(os.tmpdir(), `wsgate-${process.env.TABLE_NAME}`);
  fs.mkdirSync(d, { recursive: true });
  return d;
}
const file = (id) => path.join(dir(), Buffer.from(id).toString('hex'));

exports.put = (id) => fs.writeFileSync(file(id), id);
exports.remove = (id) => fs.rmSync(file(id), { force: true });
exports.all = () => fs.readdirSync(dir()).map((f) => Buffer.from(f, 'hex').toString());
