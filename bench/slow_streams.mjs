// Holds many concurrent slow SSE chat-completion streams open against an HTTP/1.1 endpoint and
// reports how many were established. A stream counts as established when its response status is
// 200 and its first body bytes have arrived.
//
// Usage: node slow_streams.mjs --port P [--host 127.0.0.1] [--streams 10000] [--ramp-ms 5000]
//          [--ready-timeout-ms 20000] [--hold-ms 8000]
//
// Protocol with the caller (stdout): progress lines, then "READY <established>" once every stream
// is established (or the ready timeout passed), then after --hold-ms one line
// "RESULT {json}" and exit. The caller samples the server's memory between READY and RESULT.
import net from 'node:net';

function parseArgs(argv) {
  const options = {host: '127.0.0.1', port: 0, streams: 10000, rampMs: 5000,
                   readyTimeoutMs: 20000, holdMs: 8000};
  const names = {'--host': 'host', '--port': 'port', '--streams': 'streams', '--ramp-ms': 'rampMs',
                 '--ready-timeout-ms': 'readyTimeoutMs', '--hold-ms': 'holdMs'};
  for (let i = 2; i < argv.length; i += 2) {
    const key = names[argv[i]];
    if (!key || i + 1 >= argv.length) throw new Error(`bad argument ${argv[i]}`);
    options[key] = key === 'host' ? argv[i + 1] : Number(argv[i + 1]);
  }
  if (!options.port) throw new Error('--port is required');
  return options;
}

const options = parseArgs(process.argv);
const body = JSON.stringify({
  model: 'm', stream: true,
  messages: [{role: 'user', content: 'Tell me a long story about a lighthouse keeper.'}],
});
const request = `POST /v1/chat/completions HTTP/1.1\r\nHost: ${options.host}:${options.port}\r\n` +
    `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;

const counts = {started: 0, connected: 0, established: 0, non200: 0, errors: 0,
                closedEarly: 0};
const sockets = [];
const startedAt = Date.now();
let holding = false;

function openStream() {
  counts.started++;
  const socket = net.connect({host: options.host, port: options.port});
  sockets.push(socket);
  let head = '';
  let established = false;
  let done = false;
  socket.setNoDelay(true);
  socket.on('connect', () => {
    counts.connected++;
    socket.write(request);
  });
  socket.on('data', (chunk) => {
    if (established || done) return;
    head += chunk.toString('latin1');
    const end = head.indexOf('\r\n\r\n');
    if (end < 0) return;
    if (!/^HTTP\/1\.1 200 /.test(head)) {
      counts.non200++;
      done = true;
      socket.destroy();
      return;
    }
    // The first body bytes: at least one byte after the header block.
    if (head.length > end + 4) {
      established = true;
      counts.established++;
      head = '';
    }
  });
  socket.on('error', () => {
    if (!done) counts.errors++;
    done = true;
  });
  socket.on('close', () => {
    if (!holding) return;
    if (established && !done) counts.closedEarly++;
    done = true;
  });
}

// Open the streams in small batches spread over the ramp, so the listen backlog never overflows.
const batchIntervalMs = 10;
const batches = Math.max(1, Math.ceil(options.rampMs / batchIntervalMs));
const perBatch = Math.ceil(options.streams / batches);
holding = true;
const opener = setInterval(() => {
  for (let i = 0; i < perBatch && counts.started < options.streams; i++) openStream();
  if (counts.started >= options.streams) clearInterval(opener);
}, batchIntervalMs);

const progress = setInterval(() => {
  console.log(`t=${Date.now() - startedAt}ms started=${counts.started} ` +
              `established=${counts.established} non200=${counts.non200} errors=${counts.errors}`);
}, 1000);

const readyCheck = setInterval(() => {
  const allSettled = counts.started >= options.streams &&
      counts.established + counts.non200 + counts.errors >= options.streams;
  if (allSettled || Date.now() - startedAt > options.rampMs + options.readyTimeoutMs) {
    clearInterval(readyCheck);
    const readyAt = Date.now();
    console.log(`READY ${counts.established}`);
    setTimeout(() => finish(readyAt), options.holdMs);
  }
}, 50);

function finish(readyAt) {
  clearInterval(progress);
  clearInterval(opener);
  const stillOpen = counts.established - counts.closedEarly;
  const result = {...counts, requested: options.streams, stillOpenAfterHold: stillOpen,
                  rampAndReadyMs: readyAt - startedAt, holdMs: options.holdMs};
  console.log(`RESULT ${JSON.stringify(result)}`);
  holding = false;
  for (const socket of sockets) socket.destroy();
  process.exit(0);
}
