package dev.valve.proxy;

import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Arrays;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.ReentrantLock;

/**
 * A WebSocket connection after the worker's {@code 101}: the frames of both sides pass through
 * as they are, until either side closes.
 *
 * <p>A byte tunnel rather than Helidon's WebSocket support, which would end the client's
 * connection in valve and open a second WebSocket to the worker: every message would be decoded,
 * buffered whole and encoded again, extensions the two ends agreed on (compression) would have
 * to be re-negotiated, and a close code or a fragment boundary could be changed on the way. The
 * tunnel reads only the frame headers, which is all it needs for two things of its own:
 *
 * <ul>
 *   <li>A dead client is noticed: valve pings it every {@link #PING_INTERVAL}, between two
 *       frames of the worker's, and ends a tunnel whose client did not answer within an
 *       interval, or reads nothing at all (frames to it stuck for two intervals). A browser that went away without a TCP close (a laptop shut, a
 *       network gone) would otherwise hold its place on the worker for hours. The pongs that
 *       answer valve's pings are taken out, so the worker never sees a frame it did not ask for.
 *   <li>The worker is never pinged: a Shiny session busy in a long computation is silent, not
 *       dead, and a worker that dies closes its socket, which ends the tunnel at once.
 * </ul>
 */
final class WebSocketTunnel {
    static final Duration PING_INTERVAL = Duration.ofSeconds(20);
    /** How long the other direction may take to finish once one side has closed. */
    private static final Duration CLOSING_GRACE = Duration.ofSeconds(5);
    private static final int OP_CLOSE = 0x8;
    private static final int OP_PONG = 0xA;
    private static final int OP_PING = 0x9;
    private static final byte[] PING_PAYLOAD = "valve".getBytes(StandardCharsets.US_ASCII);

    /** One side's bytes; {@code close} ends that side's connection, which also ends a read blocked on it. */
    record End(InputStream in, OutputStream out, Runnable close) {
    }

    private final End client;
    private final End worker;
    private final Duration pingInterval;
    /** Frames to the client come from the worker's pump and from the pinger: one whole frame at a time. */
    private final ReentrantLock toClient = new ReentrantLock();
    private final AtomicLong lastHeardFromClient = new AtomicLong(System.nanoTime());
    /** When a frame last went out to the client whole; a client that reads nothing stops this clock. */
    private volatile long lastWrittenToClient = System.nanoTime();
    /** When valve's last ping went out; 0 before the first. */
    private volatile long lastPing;
    private final AtomicLong toClientBytes = new AtomicLong();
    /** The status code of the client's close frame (unmasked), once it sent one; empty for none given. */
    private volatile byte[] clientClosed;
    private volatile boolean workerClosed;

    WebSocketTunnel(End client, End worker) {
        this(client, worker, PING_INTERVAL);
    }

    /** @param pingInterval shorter in tests, so that a silent client is noticed quickly */
    WebSocketTunnel(End client, End worker, Duration pingInterval) {
        this.client = client;
        this.worker = worker;
        this.pingInterval = pingInterval;
    }

    /**
     * Relays until either side closes or fails, or the client goes silent; then closes both.
     *
     * @return bytes sent to the client
     */
    long run() {
        Thread up = Thread.ofVirtual().name("valve-ws-up").start(() -> {
            try {
                relay(client.in(), worker.out(), true);
            } catch (IOException | RuntimeException e) {
                // The client left (Helidon's socket reads fail unchecked) or broke the framing:
                // the tunnel ends either way.
            } finally {
                worker.close().run();
            }
        });
        Thread pinger = Thread.ofVirtual().name("valve-ws-ping").start(this::ping);
        try {
            relay(worker.in(), client.out(), false);
        } catch (IOException | RuntimeException e) {
            // The worker closed, died or broke the framing, or the client's side failed (Helidon's
            // socket writes fail unchecked): both connections close.
        } finally {
            pinger.interrupt();
            answerClose();
            client.close().run();
            worker.close().run();
            join(up);
            join(pinger);
        }
        return toClientBytes.get();
    }

    /**
     * The client closed, and the worker's side ended without the closing frame that should answer
     * it: httpuv closes its socket before its answer is sent. valve answers in its place, with the
     * client's own code as RFC 6455 5.5.1 has it, so the client sees the clean close it asked for.
     */
    private void answerClose() {
        byte[] code = clientClosed;
        if (code == null || workerClosed) {
            return;
        }
        byte[] frame = new byte[2 + code.length];
        frame[0] = (byte) (0x80 | OP_CLOSE);
        frame[1] = (byte) code.length;
        System.arraycopy(code, 0, frame, 2, code.length);
        toClient.lock();
        try {
            client.out().write(frame);
            client.out().flush();
        } catch (IOException | RuntimeException e) {
            // The client is gone too: nothing to answer.
        } finally {
            toClient.unlock();
        }
    }

    /** Copies frames from one side to the other, frame by frame, each whole before the next. */
    private void relay(InputStream in, OutputStream out, boolean fromClient) throws IOException {
        byte[] head = new byte[14];
        byte[] chunk = Buffers.take();
        try {
            while (true) {
                int first = in.read();
                if (first < 0) {
                    return;
                }
                heard(fromClient);
                head[0] = (byte) first;
                head[1] = (byte) readByte(in);
                int headLength = 2;
                long length = head[1] & 0x7F;
                if (length >= 126) {
                    int extra = length == 126 ? 2 : 8;
                    readFully(in, head, 2, extra);
                    length = 0;
                    for (int i = 0; i < extra; i++) {
                        length = (length << 8) | (head[2 + i] & 0xFF);
                    }
                    headLength += extra;
                }
                boolean masked = (head[1] & 0x80) != 0;
                if (masked) {
                    readFully(in, head, headLength, 4);
                    headLength += 4;
                }
                if (length < 0) {
                    throw new IOException("invalid WebSocket frame length");
                }
                int opcode = first & 0x0F;
                if (opcode == OP_CLOSE && !fromClient) {
                    workerClosed = true;
                }
                if (fromClient && (opcode == OP_CLOSE || opcode == OP_PONG) && length <= 125) {
                    // A client's control frame is small: read whole, and looked into unmasked.
                    byte[] raw = new byte[(int) length];
                    readFully(in, raw, 0, raw.length);
                    byte[] payload = unmasked(raw, masked ? Arrays.copyOfRange(head, headLength - 4, headLength) : null);
                    if (opcode == OP_PONG && Arrays.equals(payload, PING_PAYLOAD)) {
                        continue;
                    }
                    if (opcode == OP_CLOSE) {
                        clientClosed = Arrays.copyOf(payload, Math.min(2, payload.length));
                    }
                    out.write(head, 0, headLength);
                    out.write(raw);
                    out.flush();
                    continue;
                }
                forwardFrame(in, out, head, headLength, length, chunk, fromClient);
            }
        } finally {
            Buffers.give(chunk);
        }
    }

    private void forwardFrame(InputStream in, OutputStream out, byte[] head, int headLength, long length,
                              byte[] chunk, boolean fromClient) throws IOException {
        if (!fromClient) {
            toClient.lock();
        }
        try {
            out.write(head, 0, headLength);
            long left = length;
            while (left > 0) {
                int count = in.read(chunk, 0, (int) Math.min(chunk.length, left));
                if (count < 0) {
                    throw new EOFException("the connection ended inside a WebSocket frame");
                }
                heard(fromClient);
                out.write(chunk, 0, count);
                left -= count;
            }
            // Each frame goes out whole at once: the next may be long in coming.
            out.flush();
            if (!fromClient) {
                toClientBytes.addAndGet(headLength + length);
                lastWrittenToClient = System.nanoTime();
            }
        } finally {
            if (!fromClient) {
                toClient.unlock();
            }
        }
    }

    private static byte[] unmasked(byte[] raw, byte[] mask) {
        byte[] payload = raw.clone();
        for (int i = 0; mask != null && i < payload.length; i++) {
            payload[i] ^= mask[i % 4];
        }
        return payload;
    }

    private void heard(boolean fromClient) {
        if (fromClient) {
            lastHeardFromClient.set(System.nanoTime());
        }
    }

    /**
     * Pings the client each interval, and ends the tunnel when the client did not answer the last
     * ping within an interval, or reads nothing: frames to it stuck for two intervals while it sent
     * nothing either. The ping waits for a frame on its way to the client, but never for long.
     */
    private void ping() {
        byte[] frame = new byte[2 + PING_PAYLOAD.length];
        frame[0] = (byte) (0x80 | OP_PING);
        frame[1] = (byte) PING_PAYLOAD.length;
        System.arraycopy(PING_PAYLOAD, 0, frame, 2, PING_PAYLOAD.length);
        long interval = pingInterval.toNanos();
        try {
            // After the worker's close frame nothing more may go to the client.
            while (!workerClosed) {
                Thread.sleep(pingInterval);
                long now = System.nanoTime();
                long heard = lastHeardFromClient.get();
                long pinged = lastPing;
                if (pinged != 0 && heard - pinged < 0 && now - pinged > interval) {
                    break;
                }
                if (!toClient.tryLock(interval, TimeUnit.NANOSECONDS)) {
                    if (now - lastWrittenToClient > 2 * interval && now - heard > 2 * interval) {
                        break;
                    }
                    continue;
                }
                try {
                    if (workerClosed) {
                        return;
                    }
                    client.out().write(frame);
                    client.out().flush();
                    lastPing = System.nanoTime();
                } finally {
                    toClient.unlock();
                }
            }
            if (!workerClosed) {
                client.close().run();
                worker.close().run();
            }
        } catch (InterruptedException e) {
            // The tunnel ended.
        } catch (IOException | RuntimeException e) {
            client.close().run();
            worker.close().run();
        }
    }

    private static void join(Thread thread) {
        try {
            if (!thread.join(CLOSING_GRACE)) {
                thread.interrupt();
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    private static int readByte(InputStream in) throws IOException {
        int b = in.read();
        if (b < 0) {
            throw new EOFException("the connection ended inside a WebSocket frame header");
        }
        return b;
    }

    private static void readFully(InputStream in, byte[] target, int offset, int length) throws IOException {
        if (in.readNBytes(target, offset, length) != length) {
            throw new EOFException("the connection ended inside a WebSocket frame");
        }
    }
}
