// Turns the results.jsonl written by run.sh into the Markdown summary pasted into RESULTS.md.
// Usage: node summarize.mjs results.jsonl > summary.md
import fs from 'node:fs';

const records = fs.readFileSync(process.argv[2], 'utf8').trim().split('\n').map(
    (line) => JSON.parse(line));
const machine = records.find((r) => r.kind === 'machine');
const wrk = (target, payload, connections) => records.find(
    (r) => r.kind === 'wrk' && r.target === target && r.payload === payload &&
        r.connections === connections);
const streams = (target) => records.find((r) => r.kind === 'streams' && r.target === target);

const ADDED_P50_TARGET_US = 50;
const THROUGHPUT_TARGET_RATIO = 0.8;
const STREAM_TARGET_KIB = 32;

const rps = (r) => r.wrk.requests / (r.wrk.duration_us / 1e6);
const errors = (r) => r.wrk.errors_connect + r.wrk.errors_read + r.wrk.errors_write +
    r.wrk.errors_status + r.wrk.errors_timeout;
const cpuPerRequestUs = (seconds, r) => (seconds * 1e6) / r.wrk.requests;
const fixed = (x, digits = 0) => x.toFixed(digits);
const verdict = (ok) => (ok ? 'meets' : 'misses');

const lines = [];
const out = (s = '') => lines.push(s);

out(`Run ${machine.stamp}: ${machine.cores} cores (${machine.cpu}), Linux ${machine.kernel}, ` +
    `Redline ${machine.redline_commit}, nginx ${machine.nginx}.`);
out(`Proxy worker threads/processes: ${machine.threads}. Each wrk run: ${machine.duration_s} s ` +
    `(after a warm-up run), one wrk thread. Pinning (taskset): for the 1-connection runs every ` +
    `process (wrk, simulator, proxy) on CPU ${machine.cpu_latency}; for the 64-connection and ` +
    `slow-stream runs wrk and the stream client on CPU ${machine.cpu_load}, the simulator(s) on ` +
    `CPU ${machine.cpu_upstream}, the proxy under test on CPU ${machine.cpu_proxy}. ` +
    `Load average at the end of the run: ${machine.loadavg_at_end} (other work on the machine ` +
    `shows up in the tail latencies).`);
out();

out('### Latency, 1 connection (µs)');
out();
out('| payload | direct p50 / p99 | nginx p50 / p99 | Redline p50 / p99 | nginx added p50 | ' +
    `Redline added p50 | target ≤ ${ADDED_P50_TARGET_US} µs |`);
out('| --- | --- | --- | --- | --- | --- | --- |');
const verdicts = [];
for (const payload of ['json', 'sse']) {
  const d = wrk('direct', payload, 1), n = wrk('nginx', payload, 1), r = wrk('redline', payload, 1);
  if (!d || !n || !r) continue;
  const pair = (x) => `${x.wrk.lat_p50_us} / ${x.wrk.lat_p99_us}`;
  const nginxAdded = n.wrk.lat_p50_us - d.wrk.lat_p50_us;
  const redlineAdded = r.wrk.lat_p50_us - d.wrk.lat_p50_us;
  const ok = redlineAdded <= ADDED_P50_TARGET_US;
  verdicts.push(`Added p50 latency, ${payload.toUpperCase()}: Redline ${verdict(ok)} the target ` +
                `(+${redlineAdded} µs over direct; nginx +${nginxAdded} µs).`);
  out(`| ${payload.toUpperCase()} | ${pair(d)} | ${pair(n)} | ${pair(r)} | +${nginxAdded} | ` +
      `+${redlineAdded} | ${verdict(ok)} |`);
}
out();

out('### Throughput, 64 connections');
out();
out('| payload | direct req/s | nginx req/s | Redline req/s | Redline / nginx | ' +
    'nginx CPU µs/req | Redline CPU µs/req | Redline p99 ms | errors (d/n/R) |');
out('| --- | --- | --- | --- | --- | --- | --- | --- | --- |');
for (const payload of ['json', 'sse']) {
  const d = wrk('direct', payload, 64), n = wrk('nginx', payload, 64),
        r = wrk('redline', payload, 64);
  if (!d || !n || !r) continue;
  const ratio = rps(r) / rps(n);
  const ok = ratio >= THROUGHPUT_TARGET_RATIO;
  const nCpu = cpuPerRequestUs(n.proxy_cpu_s, n), rCpu = cpuPerRequestUs(r.proxy_cpu_s, r);
  verdicts.push(`Throughput at 64 connections, ${payload.toUpperCase()}: Redline ` +
                `${verdict(ok)} the target (${fixed(ratio, 2)}× nginx; it spends ` +
                `${fixed(rCpu, 1)} CPU µs per request against nginx's ${fixed(nCpu, 1)}).`);
  out(`| ${payload.toUpperCase()} | ${fixed(rps(d))} | ${fixed(rps(n))} | ${fixed(rps(r))} | ` +
      `${fixed(ratio, 2)} | ${fixed(nCpu, 1)} | ${fixed(rCpu, 1)} | ` +
      `${fixed(r.wrk.lat_p99_us / 1000, 2)} | ${errors(d)}/${errors(n)}/${errors(r)} |`);
}
out();
out('CPU µs/req is the proxy\'s own user+system CPU time during the measured run divided by ' +
    'the requests completed (from /proc/PID/stat; nginx: master plus workers).');
out();

out(`### ${machine.streams} concurrent slow SSE streams`);
out();
out('| proxy | established | still open after hold | idle RSS MiB | RSS with streams MiB | ' +
    'peak RSS (VmHWM) MiB | KiB per stream | upstream conns open | upstream conns 3 s after ' +
    'clients left |');
out('| --- | --- | --- | --- | --- | --- | --- | --- | --- |');
for (const target of ['redline', 'nginx']) {
  const s = streams(target);
  if (!s) continue;
  const established = s.client.established;
  const perStream = established > 0 ? (s.open_rss_kib - s.idle_rss_kib) / established : NaN;
  if (target === 'redline') {
    verdicts.push(`Memory per open stream: Redline ${verdict(perStream <= STREAM_TARGET_KIB)} ` +
                  `the target (${fixed(perStream, 1)} KiB per stream, peak RSS ` +
                  `${fixed(s.hwm_kib / 1024, 1)} MiB).`);
    verdicts.push(`Holding ${s.client.requested} concurrent streams: Redline ` +
                  `${verdict(established === s.client.requested)} it (${established} established ` +
                  `within ${fixed(s.client.rampAndReadyMs / 1000, 1)} s of the first connect).`);
  }
  out(`| ${target === 'redline' ? 'Redline' : 'nginx'} | ${established} / ${s.client.requested} | ` +
      `${s.client.stillOpenAfterHold} | ${fixed(s.idle_rss_kib / 1024, 1)} | ` +
      `${fixed(s.open_rss_kib / 1024, 1)} | ${fixed(s.hwm_kib / 1024, 1)} | ` +
      `${fixed(perStream, 1)} | ${s.upstream_open} | ${s.upstream_left_3s_after_close} |`);
}
out();
out('KiB per stream = (highest RSS while the streams were open − RSS idle) / established streams.');
if (machine.streams_requested && machine.streams < machine.streams_requested) {
  out(`Streams were capped at ${machine.streams} (of ${machine.streams_requested} asked for): the ` +
      `open-files hard limit is ${machine.fd_limit} and cannot be raised without ` +
      'CAP_SYS_RESOURCE, and a proxy process needs one client and one upstream descriptor per ' +
      'stream.');
}
out();
out('### Against the targets');
out();
for (const v of verdicts) out(`- ${v}`);
process.stdout.write(lines.join('\n') + '\n');
