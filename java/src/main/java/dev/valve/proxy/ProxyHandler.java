package dev.valve.proxy;

import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.net.InetSocketAddress;
import java.net.SocketAddress;
import java.net.SocketTimeoutException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.Consumer;

import dev.valve.log.LogSink;
import dev.valve.observe.Exchange;
import dev.valve.observe.Observer;
import dev.valve.observe.RequestIds;
import dev.valve.pool.Lease;
import dev.valve.pool.Place;
import dev.valve.pool.PoolException;
import dev.valve.pool.WorkerPool;
import dev.valve.worker.WorkerProtocol;

import io.helidon.http.Header;
import io.helidon.http.HeaderName;
import io.helidon.http.HeaderNames;
import io.helidon.http.HeaderValues;
import io.helidon.http.Method;
import io.helidon.http.RequestException;
import io.helidon.http.ServerRequestHeaders;
import io.helidon.http.Status;
import io.helidon.webserver.CloseConnectionException;
import io.helidon.webserver.http.Handler;
import io.helidon.webserver.http.RoutingResponse;
import io.helidon.webserver.http.ServerRequest;
import io.helidon.webserver.http.ServerResponse;

/**
 * Forwards every request to a leased upstream.
 *
 * <p>The request body is read completely (memory, then a temporary file) before a worker is
 * leased, so a slow client never holds an R process. The response is pumped from the worker into
 * a spool on its own thread and the lease returned as soon as the worker is done, while this
 * thread feeds the client from the spool at the client's pace, flushing whenever it catches up
 * so streamed responses stay streamed.
 */
public final class ProxyHandler implements Handler, AutoCloseable {
    private static final byte[] NO_BYTES = new byte[0];

    /**
     * @param maxBodySize    largest request body accepted, in bytes
     * @param memoryBuffer   bytes of one body kept in memory before spilling to disk
     * @param requestTimeout how long a worker may stay silent before the request fails with 504
     * @param spoolDirectory where bodies spill to
     * @param maxHeaderBytes largest request head (all header lines) accepted; larger gets 431
     * @param secret         sent to local workers in {@code secretHeader}, which refuse requests
     *                       without it; null when the upstreams are not ours (service mode)
     * @param secretHeader   the header the workers look for the secret in
     * @param sessions       the workers serve sticky sessions (a Shiny app): a request goes to its
     *                       session's worker, named by the {@link #SESSION_COOKIE} valve sets
     * @param route          the path prefix of the app this handler serves, which its workers do
     *                       not see ({@link Routes}); {@code /} for every path, passed on as it is
     */
    public record Settings(long maxBodySize, int memoryBuffer, Duration requestTimeout, Path spoolDirectory,
                           int maxHeaderBytes, String secret, String secretHeader, boolean sessions, String route) {
        @Override
        public String toString() {
            return "Settings[secret hidden]";
        }
    }

    /** The headers that prove to a worker that a request came through valve: never taken from a client. */
    private static final Set<HeaderName> SECRET_HEADERS = Set.of(HeaderNames.create(WorkerProtocol.SECRET_HEADER),
            HeaderNames.create(WorkerProtocol.SHINY_SECRET_HEADER));
    /** Names a session's worker; a routing hint, not a credential: a stale or forged one only gets a new session. */
    static final String SESSION_COOKIE = "valve_session";
    private static final Header CONNECTION_UPGRADE = HeaderValues.create(HeaderNames.CONNECTION, "Upgrade");
    private static final HeaderName HTTP10_MARKER = HeaderNames.create(RequestRewriter.MARKER);

    /** What a plumber API can answer; anything else is refused here, without costing a worker. */
    private static final Set<Method> FORWARDED_METHODS = Set.of(Method.GET, Method.HEAD, Method.POST, Method.PUT,
            Method.DELETE, Method.OPTIONS, Method.PATCH);
    private static final Set<Method> REFUSED_METHODS = Set.of(Method.CONNECT, Method.TRACE);
    private static final Header ALLOW = HeaderValues.create(HeaderNames.ALLOW,
            "GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH");

    /** Responses up to this size with a known length go out in one write, head and body together. */
    private static final int SMALL_RESPONSE = 64 * 1024;
    /** What of a longer body goes out in the head's write: enough to fill its first packets. */
    private static final int FIRST_SLICE = 16 * 1024;
    /** nginx's status for a request whose client left (or whose connection broke) before the answer was complete. */
    private static final int CLIENT_GONE = 499;

    private final WorkerPool pool;
    private final Settings settings;
    private final LogSink log;
    private final StallGuard stallGuard;
    private final ErrorAnswers answers;
    private final Observer observer;
    private final KeptConnections kept = new KeptConnections();
    /** One for every handler in the JVM (an engine may have one per route): it bounds the heap they share. */
    private static final MemoryBudget memory = MemoryBudget.quarterOfHeap();

    /**
     * @param stallGuard limits body reads to the client timeout; owned by the caller
     * @param observer   records every request once it ends
     */
    public ProxyHandler(WorkerPool pool, Settings settings, StallGuard stallGuard, ErrorAnswers answers,
                        Observer observer, LogSink log) {
        this.pool = pool;
        this.settings = settings;
        this.stallGuard = stallGuard;
        this.answers = answers;
        this.observer = observer;
        this.log = log;
        pool.onDeparture(kept::forget);
        if (!UpstreamConnection.KEEP_ALIVE) {
            log.add("valve", "TCP_QUICKACK is not available here: a fresh worker connection per request");
        }
    }

    /** Whether this app's workers serve sticky sessions (a Shiny app). */
    boolean servesSessions() {
        return settings.sessions();
    }

    /** Closes the connections kept to workers; call once the server and the pool have stopped. */
    @Override
    public void close() {
        kept.closeAll();
    }

    @Override
    public void handle(ServerRequest req, ServerResponse res) {
        serve(req, res, observer, settings.route(), exchange -> forward(req, res, exchange));
    }

    /**
     * The story of every request around its answer: its {@link Exchange}, its request id, the
     * close a client asked for, and its record once it ends. {@link Routes} tells a request for
     * no route the same way.
     *
     * @param route the route's prefix, or null for none
     */
    static void serve(ServerRequest req, ServerResponse res, Observer observer, String route,
                      Consumer<Exchange> answer) {
        Exchange exchange = new Exchange(peerAddress(req), req.prologue().method().text(), target(req), protocol(req),
                req.headers().first(HeaderNames.REFERER).orElse(null),
                req.headers().first(HeaderNames.USER_AGENT).orElse(null), RequestIds.choose(req.headers()));
        exchange.routed(route);
        res.header(RequestIds.HEADER, exchange.requestId());
        // Helidon's isSent() stays false for some complete answers (an encoded body goes out as a
        // stream): a forward that returned has answered in full.
        boolean answered = false;
        try {
            answer.accept(exchange);
            answered = true;
            if (clientWantsClose(req)) {
                // Helidon 4.5 answers "Connection: close" but keeps the connection open
                // (helidon-io/helidon#12324): a client reading to end-of-stream would hang. Helidon
                // sends the end of a streamed response only once the handler returns, so that
                // comes first, or the close would cut it off.
                if (res instanceof RoutingResponse routing) {
                    routing.commit();
                }
                throw new CloseConnectionException("the client asked to close the connection");
            }
        } finally {
            observer.finish(exchange, exchange.switchedProtocols() ? Status.SWITCHING_PROTOCOLS_101.code()
                    : answered || res.isSent() ? res.status().code() : CLIENT_GONE);
        }
    }

    /** As the client spoke it: HTTP/1.0 requests reach the parser rewritten as HTTP/1.1. */
    private static String protocol(ServerRequest req) {
        return req.headers().contains(HTTP10_MARKER)
                ? "HTTP/1.0"
                : req.prologue().protocol() + "/" + req.prologue().protocolVersion();
    }

    private static boolean clientWantsClose(ServerRequest req) {
        return req.headers().containsToken(HeaderValues.CONNECTION_CLOSE);
    }

    private void forward(ServerRequest req, ServerResponse res, Exchange exchange) {
        Method method = req.prologue().method();
        if (!FORWARDED_METHODS.contains(method)) {
            res.header(ALLOW);
            boolean known = REFUSED_METHODS.contains(method);
            refuse(req, res, exchange, known ? Status.METHOD_NOT_ALLOWED_405 : Status.NOT_IMPLEMENTED_501, "method",
                    "method " + method.text() + (known ? " is not allowed" : " is not supported"));
            return;
        }
        if (headerBytes(req.headers()) > settings.maxHeaderBytes()) {
            refuse(req, res, exchange, Status.create(431, "Request Header Fields Too Large"), "headers_too_large",
                    "request headers are larger than " + settings.maxHeaderBytes() + " bytes");
            return;
        }
        Spool body;
        try {
            body = req.content().hasEntity() ? receiveBody(req) : null;
        } catch (Spool.BodyTooLargeException e) {
            refuse(req, res, exchange, Status.REQUEST_ENTITY_TOO_LARGE_413, "body_too_large", e.getMessage());
            throw new CloseConnectionException("request body too large");
        } catch (RequestException e) {
            // Helidon's own framing checks, e.g. a chunked body past max_body_size (413).
            refuse(req, res, exchange, e.status(), "bad_body", "the request body was refused: " + e.getMessage());
            throw new CloseConnectionException("refused request body", e);
        } catch (IOException | RuntimeException e) {
            // Malformed chunking, a body that stalled or ended early, or the client is gone: the
            // connection's framing is lost, so answer if still possible and close it.
            refuse(req, res, exchange, Status.BAD_REQUEST_400, "bad_body", "the request body could not be read");
            throw new CloseConnectionException("unreadable request body", e);
        }
        try (body) {
            List<String> tokens = settings.sessions() ? sessionTokens(req) : List.of();
            boolean firstTry = true;
            while (true) {
                Lease lease;
                long queued = System.nanoTime();
                try {
                    lease = acquire(tokens, needsRoom(req));
                } catch (PoolException e) {
                    Failure failure = Failure.of(e.reason());
                    refuse(req, res, exchange, failure.status, failure.label(), e.getMessage());
                    return;
                }
                exchange.leased(lease.upstream().name(), System.nanoTime() - queued);
                if (lease.placed()) {
                    // Scoped to the route: apps on other prefixes keep sessions of their own.
                    res.header(HeaderNames.SET_COOKIE, SESSION_COOKIE + "=" + lease.sessionToken() + "; Path="
                            + settings.route() + "; HttpOnly; SameSite=Lax");
                }
                // A session whose worker died (it refused the connection, or broke it before any
                // answer and is gone) is placed anew, once: its sessions went with it.
                boolean mayPlaceAgain = settings.sessions() && firstTry;
                UpstreamCall call = new UpstreamCall(lease, kept);
                try {
                    if (body == null && isWebSocketUpgrade(req)) {
                        upgrade(call, req, res, exchange, mayPlaceAgain);
                    } else {
                        proxy(call, req, body, res, exchange, mayPlaceAgain);
                    }
                    return;
                } catch (PlaceAgain e) {
                    log.add("valve", call.upstreamName() + " is gone; its session goes to another worker");
                }
                tokens = List.of();
                firstTry = false;
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** A WebSocket handshake (RFC 6455 4.1), which valve passes to a worker and, once answered 101, tunnels. */
    private static boolean isWebSocketUpgrade(ServerRequest req) {
        return req.prologue().method().equals(Method.GET) && !req.headers().contains(HTTP10_MARKER)
                && req.headers().first(HeaderNames.UPGRADE).map(value -> value.trim().equalsIgnoreCase("websocket"))
                        .orElse(false)
                && req.headers().containsToken(CONNECTION_UPGRADE);
    }

    /**
     * Leases an upstream (for a session, the session's own); while the request waits in the
     * queue, a client that hangs up takes it out of the queue, so an abandoned request never
     * costs a worker.
     */
    private Lease acquire(List<String> tokens, boolean reserve) throws PoolException {
        ClientConnection client = ClientConnection.current();
        if (client == null) {
            return settings.sessions() ? pool.visit(tokens, reserve, () -> { }) : pool.acquire();
        }
        AtomicBoolean settled = new AtomicBoolean();
        Thread waiting = Thread.currentThread();
        Runnable whenQueued = () -> client.onHangUp(() -> {
            if (settled.compareAndSet(false, true)) {
                waiting.interrupt();
            }
        });
        Lease lease;
        try {
            lease = settings.sessions() ? pool.visit(tokens, reserve, whenQueued) : pool.acquire(whenQueued);
        } catch (PoolException e) {
            if (settled.compareAndSet(false, true)) {
                throw e;
            }
            throw clientGone();
        }
        if (settled.compareAndSet(false, true)) {
            return lease;
        }
        // The client hung up just as a worker came free: the worker never saw the request.
        lease.release();
        throw clientGone();
    }

    /**
     * Whether a request without a session starts one that needs a place on a worker: a page (its
     * WebSocket follows) or a WebSocket. A probe or a crawler's request is only served.
     */
    private static boolean needsRoom(ServerRequest req) {
        return isWebSocketUpgrade(req) || req.prologue().method().equals(Method.GET)
                && req.headers().values(HeaderNames.ACCEPT).stream().anyMatch(accept -> accept.contains("text/html"));
    }

    /**
     * The session tokens in the request's {@link #SESSION_COOKIE}s: a browser sends one per app
     * whose route the path is under (the root's and a prefix's), and the pool knows its own.
     */
    private static List<String> sessionTokens(ServerRequest req) {
        List<String> tokens = new ArrayList<>(1);
        for (String cookies : req.headers().values(HeaderNames.COOKIE)) {
            for (String cookie : cookies.split(";")) {
                String pair = cookie.trim();
                if (pair.startsWith(SESSION_COOKIE + "=")) {
                    tokens.add(pair.substring(SESSION_COOKIE.length() + 1));
                }
            }
        }
        return tokens;
    }

    private CloseConnectionException clientGone() {
        Thread.interrupted();
        log.add("valve", "a client hung up while its request waited for a worker; dropped from the queue");
        return new CloseConnectionException("the client hung up while its request was queued");
    }

    /** valve's own answer instead of a worker's, counted by {@code reason}. */
    private void refuse(ServerRequest req, ServerResponse res, Exchange exchange, Status status, String reason,
                        String message) {
        exchange.failed(reason);
        exchange.sentBody(answers.send(req, res, status, message));
    }

    /** The worker died before it answered, and the session may be placed on another (once). */
    private static final class PlaceAgain extends Exception {
        private static final long serialVersionUID = 1L;

        PlaceAgain() {
            super(null, null, false, false);
        }
    }

    /** Sends the request and reads the answer's head; it throws only what the worker leg can. */
    @FunctionalInterface
    private interface Send {
        UpstreamConnection.Response send() throws UpstreamCall.FailedException;
    }

    /**
     * The worker's answer to {@code send}, or null when it failed and valve answered instead; the
     * call has then ended.
     *
     * @param mayPlaceAgain a worker that died is left to the caller, who places the session anew
     * @throws PlaceAgain the worker died before answering, and {@code mayPlaceAgain}
     */
    private UpstreamConnection.Response answer(UpstreamCall call, ServerRequest req, ServerResponse res,
                                               Exchange exchange, boolean mayPlaceAgain, Send send) throws PlaceAgain {
        try {
            return send.send();
        } catch (UpstreamCall.FailedException e) {
            if (mayPlaceAgain && call.upstreamDied(e.getCause())) {
                throw new PlaceAgain();
            }
            failUpstream(req, res, exchange, call, e.failure, e.getCause());
        } catch (RuntimeException | Error e) {
            call.fail(e);
            failUpstream(req, res, exchange, call, UpstreamCall.classify(e), e);
        }
        return null;
    }

    /** Everything between leasing a worker and the end of its response; the call ends on every path. */
    private void proxy(UpstreamCall call, ServerRequest req, Spool body, ServerResponse res, Exchange exchange,
                       boolean mayPlaceAgain) throws IOException, PlaceAgain {
        UpstreamConnection.Response answer = answer(call, req, res, exchange, mayPlaceAgain, () -> {
            UpstreamConnection.Response head = call.send(req.prologue().method().text(),
                    Routes.strip(settings.route(), target(req)), forwardHeaders(req, exchange), body,
                    req.prologue().method().equals(Method.HEAD), settings.requestTimeout());
            copyHeaders(head, res);
            return head;
        });
        if (answer != null) {
            relayAnswer(call, answer, res, req, exchange);
        }
    }

    /** Sends the worker's answer on; whatever breaks, the worker must not stay leased: its state is unknown, so it goes. */
    private void relayAnswer(UpstreamCall call, UpstreamConnection.Response answer, ServerResponse res,
                             ServerRequest req, Exchange exchange) throws IOException {
        try {
            relay(call, answer, res, req, exchange);
        } catch (Throwable e) {
            call.fail(e);
            throw e;
        }
    }

    /**
     * A WebSocket handshake: sent to the worker on a connection of its own. Any answer but 101
     * goes back like any response; after a 101 the connection holds a place on the worker
     * instead of its lease, and both connections become a {@link WebSocketTunnel} until either
     * side closes. The client's connection then ends: it served its last request.
     */
    private void upgrade(UpstreamCall call, ServerRequest req, ServerResponse res, Exchange exchange,
                         boolean mayPlaceAgain) throws IOException, PlaceAgain {
        ClientConnection client = ClientConnection.current();
        UpstreamConnection.Response answer = answer(call, req, res, exchange, mayPlaceAgain, () -> {
            List<String[]> headers = forwardHeaders(req, exchange);
            headers.add(new String[] {"Connection", "Upgrade"});
            headers.add(new String[] {"Upgrade", "websocket"});
            UpstreamConnection.Response head = call.upgrade(Routes.strip(settings.route(), target(req)), headers,
                    settings.requestTimeout());
            if (head.status() != Status.SWITCHING_PROTOCOLS_101.code() || client == null) {
                copyHeaders(head, res);
            }
            return head;
        });
        if (answer == null) {
            return;
        }
        if (answer.status() != Status.SWITCHING_PROTOCOLS_101.code() || client == null) {
            relayAnswer(call, answer, res, req, exchange);
            return;
        }
        WebSocketTunnel.End worker = call.upgraded();
        try (Place place = call.keepPlace()) {
            exchange.markSwitchedProtocols();
            WebSocketTunnel.End browser = client.takeOver();
            browser.out().write(switchingHead(answer, res));
            browser.out().flush();
            exchange.sentBody(new WebSocketTunnel(browser, worker).run());
        } finally {
            worker.close().run();
        }
        throw new CloseConnectionException("the WebSocket connection ended");
    }

    /**
     * The worker's 101 as the client gets it: its headers but the request id and hop-by-hop ones,
     * then the connection's upgrade, valve's request id and session cookie (already on {@code res}).
     */
    private static byte[] switchingHead(UpstreamConnection.Response answer, ServerResponse res) {
        StringBuilder head = new StringBuilder(256).append("HTTP/1.1 101 ")
                .append(answer.reason().isEmpty() ? "Switching Protocols" : answer.reason()).append("\r\n");
        HopByHop hop = HopByHop.of(answer.headers());
        for (String[] header : answer.headers()) {
            if (!hop.contains(header[0]) && !RequestIds.HEADER.lowerCase().equalsIgnoreCase(header[0])) {
                head.append(header[0]).append(": ").append(header[1]).append("\r\n");
            }
        }
        head.append(CONNECTION_UPGRADE.name()).append(": ").append(CONNECTION_UPGRADE.get()).append("\r\n");
        head.append("Upgrade: websocket\r\n");
        for (Header header : res.headers()) {
            for (String value : header.allValues()) {
                head.append(header.name()).append(": ").append(value).append("\r\n");
            }
        }
        return head.append("\r\n").toString().getBytes(StandardCharsets.ISO_8859_1);
    }

    private void failUpstream(ServerRequest req, ServerResponse res, Exchange exchange, UpstreamCall call,
                              Failure failure, Throwable cause) {
        String message = failure.message(call.upstreamName());
        log.add("valve", message + " (" + cause + "); replacing it");
        // A header the worker sent may be what failed: none of them belongs to this answer.
        res.headers().clear();
        res.header(RequestIds.HEADER, exchange.requestId());
        refuse(req, res, exchange, failure.status, failure.label(), message);
    }

    private static int headerBytes(ServerRequestHeaders headers) {
        int total = 0;
        for (Header header : headers) {
            for (String value : header.allValues()) {
                total += header.name().length() + value.length() + 4;
            }
        }
        return total;
    }

    private Spool receiveBody(ServerRequest req) throws IOException {
        Spool body = new Spool(settings.memoryBuffer(), memory, settings.spoolDirectory());
        try (InputStream in = stallGuard.guard(req.content().inputStream())) {
            body.fill(in, req.headers().contentLength().orElse(-1), settings.maxBodySize());
            return body;
        } catch (IOException | RuntimeException e) {
            body.close();
            throw e;
        }
    }

    /**
     * The request target exactly as the client sent it (a proxy must not re-encode it), except
     * that an absolute-form target ({@code http://host/path}) becomes origin-form for the worker.
     */
    static String target(ServerRequest req) {
        String path = originForm(req.prologue().uriPath().rawPath());
        return req.prologue().hasQuery() ? path + "?" + req.prologue().query().rawValue() : path;
    }

    static String originForm(String rawPath) {
        int scheme = rawPath.indexOf("://");
        if (scheme <= 0 || rawPath.startsWith("/")) {
            return rawPath;
        }
        int slash = rawPath.indexOf('/', scheme + 3);
        return slash < 0 ? "/" : rawPath.substring(slash);
    }

    private List<String[]> forwardHeaders(ServerRequest req, Exchange exchange) {
        ServerRequestHeaders in = req.headers();
        HopByHop hop = HopByHop.of(in);
        List<String[]> out = new ArrayList<>(in.size() + 3);
        for (Header header : in) {
            HeaderName name = header.headerName();
            if (hop.contains(header) || name.equals(HeaderNames.CONTENT_LENGTH) || name.equals(HeaderNames.EXPECT)
                    || SECRET_HEADERS.contains(name) || name.equals(HTTP10_MARKER)
                    || name.equals(HeaderNames.X_FORWARDED_FOR) || name.equals(HeaderNames.X_FORWARDED_PROTO)
                    || name.equals(HeaderNames.X_FORWARDED_HOST) || name.equals(RequestIds.HEADER)
                    || name.equals(Routes.PREFIX_HEADER) && Routes.hasPrefix(settings.route())) {
                continue;
            }
            for (String value : header.allValues()) {
                out.add(new String[] {header.name(), value});
            }
        }
        out.add(new String[] {RequestIds.HEADER.defaultCase(), exchange.requestId()});
        out.add(new String[] {"X-Forwarded-For", forwardedFor(req)});
        out.add(new String[] {"X-Forwarded-Proto", req.isSecure() ? "https" : "http"});
        in.first(HeaderNames.HOST).ifPresent(host -> out.add(new String[] {"X-Forwarded-Host", host}));
        if (Routes.hasPrefix(settings.route())) {
            out.add(new String[] {Routes.PREFIX_HEADER.defaultCase(),
                    Routes.forwardedPrefix(in.first(Routes.PREFIX_HEADER).orElse(null), settings.route())});
        }
        if (settings.secret() != null) {
            out.add(new String[] {settings.secretHeader(), settings.secret()});
        }
        return out;
    }

    /** Status and end-to-end headers of the worker's answer (its request id is valve's); nothing is sent yet. */
    private static void copyHeaders(UpstreamConnection.Response answer, ServerResponse res) {
        res.status(Status.create(answer.status(), answer.reason()));
        HopByHop hop = HopByHop.of(answer.headers());
        for (String[] header : answer.headers()) {
            if (!hop.contains(header[0]) && !RequestIds.HEADER.lowerCase().equalsIgnoreCase(header[0])) {
                res.headers().add(HeaderValues.create(header[0], header[1]));
            }
        }
    }

    private void relay(UpstreamCall call, UpstreamConnection.Response answer, ServerResponse res, ServerRequest req,
                       Exchange exchange) throws IOException {
        ClientConnection client = ClientConnection.current();
        boolean http10 = req.headers().contains(HTTP10_MARKER);
        if (http10 && req.headers().containsToken(HeaderValues.CONNECTION_KEEP_ALIVE)) {
            // An HTTP/1.0 client keeps the connection only when the answer says so.
            res.header(HeaderValues.CONNECTION_KEEP_ALIVE);
        }
        if (answer.body() == null) {
            call.complete();
            // For HEAD the worker's Content-Length describes the body a GET would get: it stays.
            res.send(NO_BYTES);
            return;
        }
        long length = answer.contentLength();
        if (length >= 0 && length <= SMALL_RESPONSE) {
            sendWhole(call, answer, req, res, exchange);
            return;
        }
        if (length > 0 && length <= settings.memoryBuffer() && memory.reserve(length)) {
            try {
                sendWhole(call, answer, req, res, exchange);
            } finally {
                memory.release(length);
            }
            return;
        }
        Spool spool = new Spool(settings.memoryBuffer(), memory, settings.spoolDirectory());
        try (spool) {
            Thread.ofVirtual().name("valve-pump-" + call.upstreamName()).start(() -> pump(call, answer.body(), spool));
            if (client != null) {
                // A stream may pause for as long as the worker likes; a client that leaves
                // meanwhile writes nothing that could fail, so watch for it hanging up.
                client.onHangUp(call::abandon);
            }
            if (http10 && answer.contentLength() < 0) {
                // Chunks mean nothing to an HTTP/1.0 client: take the whole body to learn its length.
                res.header(HeaderValues.create(HeaderNames.CONTENT_LENGTH, Long.toString(spool.awaitEnd())));
            }
            try (OutputStream out = res.outputStream()) {
                spool.transferTo(out);
            }
            exchange.sentBody(spool.size());
        } catch (IOException | UncheckedIOException e) {
            // Headers are out (or the worker broke off), so no error status can follow: dropping
            // the connection is the only honest way to say the body is incomplete. A client that
            // left frees the worker now, not when the worker stops writing.
            call.abandon();
            throw new CloseConnectionException("response not completed: " + e.getMessage(), e);
        }
    }

    /**
     * A body of known length that fits in memory: read it whole, free the worker, then send it,
     * without a pump thread, a spool or a copy between them. Short bodies go out with the head
     * in one write; a longer one goes out from the array as it is, but for a first slice that
     * Helidon copies next to the head.
     */
    private void sendWhole(UpstreamCall call, UpstreamConnection.Response answer, ServerRequest req, ServerResponse res,
                           Exchange exchange) {
        int length = (int) answer.contentLength();
        byte[] body = new byte[length];
        try {
            int count = answer.body().readNBytes(body, 0, length);
            if (count != length) {
                throw new EOFException("upstream body ended " + (length - count) + " bytes early");
            }
        } catch (IOException e) {
            // Nothing has reached the client yet, so it can still be told what happened.
            call.fail(e);
            failUpstream(req, res, exchange, call,
                    e instanceof SocketTimeoutException ? Failure.UPSTREAM_TIMEOUT : Failure.UPSTREAM_BROKE_OFF, e);
            return;
        }
        call.complete();
        exchange.sentBody(length);
        if (length <= SMALL_RESPONSE) {
            res.send(body);
            return;
        }
        try (OutputStream out = res.outputStream()) {
            out.write(body, 0, FIRST_SLICE);
            out.write(body, FIRST_SLICE, length - FIRST_SLICE);
        } catch (IOException e) {
            throw new CloseConnectionException("response not completed: " + e.getMessage(), e);
        }
    }

    /** Takes the response from the worker at the worker's pace, then frees the worker. */
    private void pump(UpstreamCall call, InputStream in, Spool spool) {
        byte[] buffer = Buffers.take();
        try (call) {
            int count;
            while ((count = in.read(buffer)) >= 0) {
                spool.write(buffer, 0, count);
            }
            spool.finish();
            call.complete();
        } catch (Throwable e) {
            call.fail(e);
            spool.fail(e instanceof IOException io ? io : new IOException(e));
            log.add("valve", call.upstreamName() + " broke off its response: " + e);
        } finally {
            Buffers.give(buffer);
        }
    }

    /** The client's own chain, if any, with the address we actually saw appended. */
    private static String forwardedFor(ServerRequest req) {
        String client = peerAddress(req);
        return req.headers().first(HeaderNames.X_FORWARDED_FOR)
                .map(previous -> previous + ", " + client)
                .orElse(client);
    }

    /** The address the connection actually came from. */
    private static String peerAddress(ServerRequest req) {
        SocketAddress peer = req.remotePeer().address();
        return peer instanceof InetSocketAddress inet ? inet.getAddress().getHostAddress() : String.valueOf(peer);
    }
}
