package dev.valve.proxy;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** The tunnel between two real socket pairs: the test plays the browser and the worker. */
class WebSocketTunnelTest {
    private static final Duration PING = Duration.ofMillis(200);
    private final List<Socket> sockets = new ArrayList<>();
    private Socket browser;
    private Socket worker;
    private CompletableFuture<Long> tunnel;

    @BeforeEach
    void connect() throws IOException {
        Socket[] client = pair();
        Socket[] upstream = pair();
        browser = client[0];
        worker = upstream[0];
        WebSocketTunnel.End clientEnd = end(client[1]);
        WebSocketTunnel.End workerEnd = end(upstream[1]);
        tunnel = new CompletableFuture<>();
        Thread.ofVirtual().start(() -> tunnel.complete(new WebSocketTunnel(clientEnd, workerEnd, PING).run()));
    }

    @AfterEach
    void close() throws Exception {
        for (Socket socket : sockets) {
            socket.close();
        }
        tunnel.get(10, TimeUnit.SECONDS);
    }

    @Test
    void framesPassBothWaysByteForByte() throws Exception {
        byte[] hello = frame(0x81, "hello".getBytes(StandardCharsets.UTF_8), true);
        browser.getOutputStream().write(hello);
        assertArrayEquals(hello, readFrame(worker.getInputStream()).raw);

        byte[] payload = new byte[300_000];
        new Random(1).nextBytes(payload);
        byte[] binary = frame(0x82, payload, false);
        worker.getOutputStream().write(binary);
        assertArrayEquals(binary, nextDataFrame(browser.getInputStream()).raw);

        // A fragmented message: each fragment passes as it is.
        byte[] first = frame(0x01, "frag".getBytes(StandardCharsets.UTF_8), false);
        byte[] last = frame(0x80, "ment".getBytes(StandardCharsets.UTF_8), false);
        worker.getOutputStream().write(first);
        worker.getOutputStream().write(last);
        assertArrayEquals(first, nextDataFrame(browser.getInputStream()).raw);
        assertArrayEquals(last, nextDataFrame(browser.getInputStream()).raw);
    }

    @Test
    void theClientIsPingedAndItsPongNeverReachesTheWorker() throws Exception {
        Frame ping = readFrame(browser.getInputStream());
        assertEquals(0x9, ping.opcode());
        assertEquals("valve", new String(ping.payload, StandardCharsets.US_ASCII));
        browser.getOutputStream().write(frame(0x8A, ping.payload, true));
        byte[] after = frame(0x81, "after".getBytes(StandardCharsets.UTF_8), true);
        browser.getOutputStream().write(after);
        assertArrayEquals(after, readFrame(worker.getInputStream()).raw, "the pong was taken out");
    }

    @Test
    void aClientThatAnswersNothingIsDisconnected() throws Exception {
        // The browser reads nothing and answers no ping: after two intervals the tunnel ends,
        // and the worker sees its connection close.
        assertEquals(-1, drain(worker.getInputStream()));
        tunnel.get(10, TimeUnit.SECONDS);
    }

    @Test
    void aClientThatReadsNothingIsDisconnectedWhileTheWorkerKeepsSending() throws Exception {
        // The worker streams large frames; the browser neither reads nor sends: once the socket
        // buffers are full, frames stop moving and the tunnel ends, freeing the worker.
        byte[] big = frame(0x82, new byte[1 << 20], false);
        Thread.ofVirtual().start(() -> {
            try {
                while (true) {
                    worker.getOutputStream().write(big);
                }
            } catch (IOException e) {
                // The tunnel closed the worker's connection: that is the point.
            }
        });
        tunnel.get(30, TimeUnit.SECONDS);
        assertTrue(worker.isClosed() || drain(worker.getInputStream()) == -1);
    }

    @Test
    void aWorkerThatClosesEndsTheClientsConnection() throws Exception {
        byte[] closeFrame = frame(0x88, new byte[] {0x03, (byte) 0xE8}, false);
        worker.getOutputStream().write(closeFrame);
        worker.shutdownOutput();
        assertArrayEquals(closeFrame, nextDataFrame(browser.getInputStream()).raw);
        assertEquals(-1, drain(browser.getInputStream()));
        assertTrue(tunnel.get(10, TimeUnit.SECONDS) >= closeFrame.length);
    }

    @Test
    void aWorkerThatDropsTheConnectionAfterTheClientsCloseStillAnswersIt() throws Exception {
        byte[] closeFrame = frame(0x88, new byte[] {0x03, (byte) 0xE8}, true);
        browser.getOutputStream().write(closeFrame);
        assertArrayEquals(closeFrame, readFrame(worker.getInputStream()).raw);
        // As httpuv does: the socket closes before the answering close frame is sent.
        worker.close();
        Frame answer = nextDataFrame(browser.getInputStream());
        assertEquals(0x8, answer.opcode());
        assertArrayEquals(new byte[] {0x03, (byte) 0xE8}, answer.payload);
        assertEquals(-1, drain(browser.getInputStream()));
    }

    @Test
    void aClientThatLeavesEndsTheWorkersConnection() throws Exception {
        browser.close();
        assertEquals(-1, drain(worker.getInputStream()));
    }

    private Socket[] pair() throws IOException {
        try (ServerSocket server = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            Socket outside = new Socket(server.getInetAddress(), server.getLocalPort());
            Socket inside = server.accept();
            sockets.add(outside);
            sockets.add(inside);
            outside.setSoTimeout(10_000);
            return new Socket[] {outside, inside};
        }
    }

    private static WebSocketTunnel.End end(Socket socket) throws IOException {
        return new WebSocketTunnel.End(socket.getInputStream(), socket.getOutputStream(), () -> {
            try {
                socket.close();
            } catch (IOException e) {
                throw new AssertionError(e);
            }
        });
    }

    /** Reads until the end of the stream; -1 when it ended. */
    private static int drain(InputStream in) throws IOException {
        byte[] buffer = new byte[4096];
        int count;
        while ((count = in.read(buffer)) >= 0) {
            // Pings and whatever else was on the way.
        }
        return count;
    }

    /** A frame as RFC 6455 5.2 lays it out; a client's is masked. */
    static byte[] frame(int first, byte[] payload, boolean masked) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        out.write(first);
        int maskBit = masked ? 0x80 : 0;
        if (payload.length < 126) {
            out.write(maskBit | payload.length);
        } else if (payload.length < 65536) {
            out.write(maskBit | 126);
            out.write(payload.length >> 8);
            out.write(payload.length);
        } else {
            out.write(maskBit | 127);
            for (int shift = 56; shift >= 0; shift -= 8) {
                out.write((int) ((long) payload.length >> shift));
            }
        }
        byte[] mask = {0x12, 0x34, 0x56, 0x78};
        if (masked) {
            out.writeBytes(mask);
        }
        for (int i = 0; i < payload.length; i++) {
            out.write(masked ? payload[i] ^ mask[i % 4] : payload[i]);
        }
        return out.toByteArray();
    }

    /** A frame read off the wire: its bytes as they came, and its payload unmasked. */
    private record Frame(byte[] raw, byte[] payload) {
        int opcode() {
            return raw[0] & 0x0F;
        }
    }

    private static Frame nextDataFrame(InputStream in) throws IOException {
        Frame frame;
        do {
            frame = readFrame(in);
        } while (frame.opcode() == 0x9);
        return frame;
    }

    private static Frame readFrame(InputStream stream) throws IOException {
        DataInputStream in = new DataInputStream(stream);
        ByteArrayOutputStream raw = new ByteArrayOutputStream();
        int first = in.readUnsignedByte();
        int second = in.readUnsignedByte();
        raw.write(first);
        raw.write(second);
        long length = second & 0x7F;
        if (length == 126) {
            length = in.readUnsignedShort();
            raw.write((int) length >> 8);
            raw.write((int) length);
        } else if (length == 127) {
            length = in.readLong();
            for (int shift = 56; shift >= 0; shift -= 8) {
                raw.write((int) (length >> shift));
            }
        }
        byte[] mask = null;
        if ((second & 0x80) != 0) {
            mask = in.readNBytes(4);
            raw.writeBytes(mask);
        }
        byte[] body = in.readNBytes((int) length);
        raw.writeBytes(body);
        byte[] payload = body.clone();
        if (mask != null) {
            for (int i = 0; i < payload.length; i++) {
                payload[i] ^= mask[i % 4];
            }
        }
        return new Frame(raw.toByteArray(), payload);
    }
}
