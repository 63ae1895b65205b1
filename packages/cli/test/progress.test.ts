import t from 'tap'
import { formatProgress } from '../src/progress.js'
import { formatBytes } from '../src/summary.js'

t.test('progress line: bar, counts, bytes, rate, ETA', async (t) => {
  const line = formatProgress({ opsTotal: 200, opsDone: 50, bytesTotal: 4 * 1024 * 1024, bytesDone: 1024 * 1024, startedAt: 0 }, 1000)
  t.match(line, /^\[#####-{15}\] 25%/, 'a quarter of the bytes: a quarter of the bar')
  t.match(line, /50\/200 ops/)
  t.match(line, /1\.00 MiB\/4\.00 MiB/)
  t.match(line, /1\.00 MiB\/s/, 'rate from elapsed time')
  t.match(line, /ETA 3s$/, 'the rest at that rate')
  t.match(formatProgress({ opsTotal: 4, opsDone: 4, bytesTotal: 0, bytesDone: 0, startedAt: 0 }, 10), /100%.*ETA 0s/, 'no bytes to send: ops count')
  const scanning = formatProgress({ opsTotal: 200, opsDone: 50, bytesTotal: 4 * 1024 * 1024, bytesDone: 1024 * 1024, startedAt: 0, scanning: true }, 1000)
  t.match(scanning, /^scanning and sending {2}50\/200\+ ops {2}1\.00 MiB\/4\.00 MiB\+ {2}1\.00 MiB\/s$/, 'while the scan still finds work: counts so far, no bar, no ETA')
})

t.test('byte formatting', async (t) => {
  t.equal(formatBytes(0), '0 B')
  t.equal(formatBytes(1023), '1023 B')
  t.equal(formatBytes(1536), '1.50 KiB')
  t.equal(formatBytes(200 * 1024 * 1024), '200.0 MiB')
})
