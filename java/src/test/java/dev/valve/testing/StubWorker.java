package dev.valve.testing;

import java.io.BufferedInputStream;
import java.io.BufferedOutputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.Queue;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.zip.CRC32;

import dev.valve.pool.ManagedProcess;
import dev.valve.pool.Upstream;

/**
 * An HTTP/1.1 worker on a real loopback socket, written by hand so tests see exactly what the
 * engine sends and can make it misbehave. Paths: {@code /sleep?ms=N}, {@code /echo},
 * {@code /bytes?n=N}, {@code /stream} (first chunk, then waits for {@link #streamGate}),
 * {@code /status?code=N}, {@code /die} (crashes mid-request), {@code /die-mid-body},
 * {@code /bad-header} (a header name with a space, which no client may accept),
 * {@code /close-after} (answers, then closes the connection as it says it will).
 *
 * <p>Like plumber (httpuv) it keeps connections open between requests unless asked to close,
 * and, unlike plumber, lets a test close the connections it keeps ({@link #dropIdleConnections}).
 */
public final class StubWorker implements Upstream, ManagedProcess {
    /** What the worker received. Header names are lower case. */
    public record Received(String method, String target, Map<String, List<String>> headers,
                           long bodyLength, long bodyCrc) {
    }

    public final CountDownLatch streamGate = new CountDownLatch(1);
    public final Queue<Received> received = new ConcurrentLinkedQueue<>();
    public final AtomicInteger inFlight = new AtomicInteger();
    public final AtomicInteger maxInFlight = new AtomicInteger();
    /** Connections accepted: fewer than requests means connections were reused. */
    public final AtomicInteger connections = new AtomicInteger();
    /** What {@link #residentBytes()} reports, as a test sets it. */
    public final AtomicLong resident = new AtomicLong(-1);

    private final String name;
    private final ServerSocket server;
    private final AtomicBoolean alive = new AtomicBoolean(true);
    private final List<Runnable> exitCallbacks = new CopyOnWriteArrayList<>();
    private final List<Socket> open = new CopyOnWriteArrayList<>();
    /** Connections waiting for their next request. */
    private final Set<Socket> idle = ConcurrentHashMap.newKeySet();

    public StubWorker(int id) throws IOException {
        this.name = "worker " + id;
        this.server = new ServerSocket(0, 50, InetAddress.getLoopbackAddress());
        Thread.ofVirtual().start(this::acceptLoop);
    }

    @Override
    public String name() {
        return name;
    }

    @Override
    public String host() {
        return "127.0.0.1";
    }

    @Override
    public int port() {
        return server.getLocalPort();
    }

    @Override
    public Optional<ManagedProcess> process() {
        return Optional.of(this);
    }

    /** There is no process: status shows what it shows for a pod. */
    @Override
    public long pid() {
        return -1;
    }

    @Override
    public boolean isAlive() {
        return alive.get();
    }

    @Override
    public long residentBytes() {
        return resident.get();
    }

    @Override
    public void onExit(Runnable callback) {
        // Like Process.onExit().thenRun(): for a worker already dead, the callback runs at once.
        exitCallbacks.add(callback);
        if (!alive.get()) {
            runExitCallbacks();
        }
    }

    @Override
    public void stop(Duration grace) {
        if (shutDown()) {
            runExitCallbacks();
        }
    }

    /** Dies like a killed process: every connection drops and whoever watches it is told. */
    public void crash() {
        stop(Duration.ZERO);
    }

    /**
     * Dies as a killed process does: its connections are reset at once, but its port still
     * takes connections for a while (a dying process tears down its memory before its sockets
     * close), which it then drops; and whoever watches it learns of the exit only after
     * {@code noticedAfter}, when the port closes too.
     */
    public void crashUnnoticed(Duration noticedAfter) {
        if (!alive.compareAndSet(true, false)) {
            return;
        }
        for (Socket socket : open) {
            try {
                socket.setSoLinger(true, 0);
                socket.close();
            } catch (IOException e) {
                // Gone already.
            }
        }
        Thread.ofVirtual().start(() -> {
            try {
                Thread.sleep(noticedAfter);
                server.close();
            } catch (InterruptedException | IOException e) {
                Thread.currentThread().interrupt();
            }
            runExitCallbacks();
        });
    }

    private void runExitCallbacks() {
        for (Runnable callback : exitCallbacks) {
            if (exitCallbacks.remove(callback)) {
                callback.run();
            }
        }
    }

    private boolean shutDown() {
        if (!alive.compareAndSet(true, false)) {
            return false;
        }
        try {
            server.close();
        } catch (IOException e) {
            // Closing is all we wanted.
        }
        for (Socket socket : open) {
            try {
                socket.close();
            } catch (IOException e) {
                // Same.
            }
        }
        return true;
    }

    private void acceptLoop() {
        while (alive.get()) {
            try {
                Socket socket = server.accept();
                connections.incrementAndGet();
                open.add(socket);
                if (!alive.get()) {
                    // Accepted as it crashed: a killed process keeps no connection open.
                    socket.close();
                    return;
                }
                Thread.ofVirtual().start(() -> serve(socket));
            } catch (IOException e) {
                return;
            }
        }
    }

    private void serve(Socket socket) {
        try (socket) {
            InputStream in = new BufferedInputStream(socket.getInputStream());
            // Buffered past the largest write, so the last bytes of every answer leave only with
            // the flush below: a request counts as in flight until its answer can be complete.
            OutputStream out = new BufferedOutputStream(socket.getOutputStream(), 128 * 1024);
            boolean keepAlive = true;
            while (keepAlive) {
                idle.add(socket);
                String requestLine = readLine(in);
                idle.remove(socket);
                if (requestLine == null) {
                    return;
                }
                String[] parts = requestLine.split(" ");
                Map<String, List<String>> headers = readHeaders(in);
                CRC32 crc = new CRC32();
                long length = readBody(in, headers, crc);
                Received request = new Received(parts[0], parts[1], headers, length, crc.getValue());
                received.add(request);
                keepAlive = !List.of("close").equals(headers.get("connection")) && !parts[1].equals("/close-after");
                int now = inFlight.incrementAndGet();
                maxInFlight.accumulateAndGet(now, Math::max);
                try {
                    respond(request, in, out, keepAlive);
                } finally {
                    inFlight.decrementAndGet();
                }
                out.flush();
            }
        } catch (IOException | InterruptedException e) {
            // The client or the test went away; a stub has nothing to clean up.
        } finally {
            idle.remove(socket);
            open.remove(socket);
        }
    }

    /** Connections waiting for their next request. */
    public int idleConnections() {
        return idle.size();
    }

    /** Closes every connection that waits for its next request, as a worker may at any time. */
    public void dropIdleConnections() throws IOException {
        for (Socket socket : idle) {
            socket.close();
        }
    }

    private void respond(Received request, InputStream in, OutputStream out, boolean keepAlive)
            throws IOException, InterruptedException {
        String connection = keepAlive ? null : "close";
        String path = request.target().replaceFirst("\\?.*", "");
        String query = request.target().contains("?") ? request.target().replaceFirst("^[^?]*\\?", "") : "";
        switch (path) {
            case "/sleep" -> {
                Thread.sleep(Long.parseLong(param(query, "ms", "100")));
                send(out, 200, Map.of("Content-Type", "text/plain"), name.getBytes(StandardCharsets.UTF_8), connection);
            }
            case "/bytes" -> {
                long n = Long.parseLong(param(query, "n", "10"));
                writeHead(out, 200, Map.of("Content-Length", Long.toString(n)), connection);
                byte[] block = new byte[64 * 1024];
                for (int i = 0; i < block.length; i++) {
                    block[i] = (byte) (i % 251);
                }
                for (long sent = 0; sent < n; ) {
                    int count = (int) Math.min(block.length, n - sent);
                    out.write(block, 0, count);
                    sent += count;
                }
            }
            case "/stream" -> {
                writeHead(out, 200, Map.of("Transfer-Encoding", "chunked", "Content-Type", "text/plain"), connection);
                writeChunk(out, "first\n");
                streamGate.await();
                writeChunk(out, "second\n");
                out.write("0\r\n\r\n".getBytes(StandardCharsets.US_ASCII));
            }
            case "/status" -> {
                int code = Integer.parseInt(param(query, "code", "204"));
                send(out, code, Map.of("ETag", "\"v1\""), new byte[0], connection);
            }
            case "/bad-header" -> send(out, 200, Map.of("X Bad", "1"), "ok".getBytes(StandardCharsets.UTF_8), connection);
            case "/ws" -> {
                // A WebSocket endpoint that echoes every byte: the tunnel carries frames as they are.
                if (!List.of("websocket").equals(request.headers().get("upgrade"))) {
                    send(out, 426, Map.of("Upgrade", "websocket"), new byte[0], connection);
                    return;
                }
                String key = request.headers().get("sec-websocket-key").get(0);
                writeHead(out, 101, Map.of("Upgrade", "websocket", "Connection", "Upgrade",
                        "Sec-WebSocket-Accept", websocketAccept(key)), null);
                out.flush();
                int count;
                byte[] buffer = new byte[8192];
                while ((count = in.read(buffer)) >= 0) {
                    out.write(buffer, 0, count);
                    out.flush();
                }
                throw new InterruptedException("the WebSocket ended");
            }
            case "/die" -> crash();
            case "/die-unnoticed" -> {
                // Only the worker named by its id dies; any other answers, as a healthy one would.
                if (name.equals("worker " + param(query, "id", ""))) {
                    crashUnnoticed(Duration.ofMillis(Long.parseLong(param(query, "ms", "500"))));
                } else {
                    send(out, 200, Map.of("Content-Type", "text/plain"), name.getBytes(StandardCharsets.UTF_8), connection);
                }
            }
            case "/die-mid-body" -> {
                writeHead(out, 200, Map.of("Content-Length", "1000000"), connection);
                out.write(new byte[1000]);
                out.flush();
                crash();
            }
            default -> {
                Map<String, String> head = new LinkedHashMap<>();
                head.put("Content-Type", "text/plain");
                head.put("X-Stub-Worker", name);
                head.put("Set-Cookie", "a=1");
                head.put("Keep-Alive", "timeout=5");
                byte[] body = ("method=" + request.method() + "\ntarget=" + request.target()
                        + "\nbody=" + request.bodyLength() + "\n").getBytes(StandardCharsets.UTF_8);
                if (request.method().equals("HEAD")) {
                    writeHead(out, 200, Map.of("Content-Length", Integer.toString(body.length)), connection);
                } else {
                    send(out, 200, head, body, connection);
                }
            }
        }
    }

    private static String param(String query, String name, String fallback) {
        for (String pair : query.split("&")) {
            if (pair.startsWith(name + "=")) {
                return pair.substring(name.length() + 1);
            }
        }
        return fallback;
    }

    private static void send(OutputStream out, int status, Map<String, String> headers, byte[] body,
                             String connection) throws IOException {
        Map<String, String> all = new LinkedHashMap<>(headers);
        if (status != 204 && status != 304) {
            all.put("Content-Length", Integer.toString(body.length));
        }
        writeHead(out, status, all, connection);
        out.write(body);
    }

    private static void writeHead(OutputStream out, int status, Map<String, String> headers, String connection)
            throws IOException {
        StringBuilder head = new StringBuilder("HTTP/1.1 " + status + " Stub\r\n");
        if (connection != null) {
            head.append("Connection: ").append(connection).append("\r\n");
        }
        headers.forEach((name, value) -> head.append(name).append(": ").append(value).append("\r\n"));
        out.write(head.append("\r\n").toString().getBytes(StandardCharsets.US_ASCII));
    }

    /** RFC 6455 4.2.2: the key with the protocol's GUID, hashed. */
    private static String websocketAccept(String key) {
        try {
            byte[] digest = java.security.MessageDigest.getInstance("SHA-1").digest(
                    (key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").getBytes(StandardCharsets.US_ASCII));
            return java.util.Base64.getEncoder().encodeToString(digest);
        } catch (java.security.NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    private static void writeChunk(OutputStream out, String text) throws IOException {
        byte[] bytes = text.getBytes(StandardCharsets.UTF_8);
        out.write((Integer.toHexString(bytes.length) + "\r\n").getBytes(StandardCharsets.US_ASCII));
        out.write(bytes);
        out.write("\r\n".getBytes(StandardCharsets.US_ASCII));
        out.flush();
    }

    public static Map<String, List<String>> readHeaders(InputStream in) throws IOException {
        Map<String, List<String>> headers = new LinkedHashMap<>();
        String line;
        while ((line = readLine(in)) != null && !line.isEmpty()) {
            int colon = line.indexOf(':');
            headers.computeIfAbsent(line.substring(0, colon).trim().toLowerCase(Locale.ROOT), k -> new ArrayList<>())
                    .add(line.substring(colon + 1).trim());
        }
        return headers;
    }

    /** Reads a Content-Length or chunked body, counting and checksumming it without keeping it. */
    static long readBody(InputStream in, Map<String, List<String>> headers, CRC32 crc) throws IOException {
        byte[] buffer = new byte[64 * 1024];
        if (headers.containsKey("transfer-encoding")) {
            long total = 0;
            while (true) {
                long size = Long.parseLong(readLine(in).split(";")[0].trim(), 16);
                if (size == 0) {
                    readHeaders(in);
                    return total;
                }
                total += copy(in, size, buffer, crc);
                readLine(in);
            }
        }
        List<String> length = headers.get("content-length");
        return length == null ? 0 : copy(in, Long.parseLong(length.get(0)), buffer, crc);
    }

    private static long copy(InputStream in, long size, byte[] buffer, CRC32 crc) throws IOException {
        long left = size;
        while (left > 0) {
            int count = in.read(buffer, 0, (int) Math.min(buffer.length, left));
            if (count < 0) {
                throw new IOException("body ended early");
            }
            crc.update(buffer, 0, count);
            left -= count;
        }
        return size;
    }

    public static String readLine(InputStream in) throws IOException {
        ByteArrayOutputStream line = new ByteArrayOutputStream();
        int b;
        while ((b = in.read()) >= 0) {
            if (b == '\n') {
                String text = line.toString(StandardCharsets.ISO_8859_1);
                return text.endsWith("\r") ? text.substring(0, text.length() - 1) : text;
            }
            line.write(b);
        }
        return line.size() == 0 ? null : line.toString(StandardCharsets.ISO_8859_1);
    }
}
