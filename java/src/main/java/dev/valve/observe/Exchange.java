package dev.valve.observe;

/**
 * One request's facts, filled in by the proxy as it learns them and recorded once, by
 * {@link Observer#finish}, for the access log, the metrics and the status page. Written only by
 * the request's own thread; read by others only after it was recorded.
 */
public final class Exchange {
    /** The queue wait and body size when there was none: no worker was leased, nothing was counted. */
    static final long NONE = -1;

    final long startNanos = System.nanoTime();
    final long startMillis = System.currentTimeMillis();
    final String client;
    final String method;
    final String target;
    final String protocol;
    final String referer;
    final String userAgent;
    final String requestId;
    /** The prefix of the route that took it; null when none did. */
    String route;
    long queueWaitNanos = NONE;
    String worker;
    long bodyBytes = NONE;
    String failure;
    int status;
    long durationNanos;
    private boolean switchedProtocols;

    /**
     * @param client    the peer's address
     * @param target    the request target as the client sent it
     * @param protocol  such as {@code HTTP/1.1}
     * @param referer   the Referer header, or null
     * @param userAgent the User-Agent header, or null
     * @param requestId the id the request goes on with (see {@link RequestIds})
     */
    public Exchange(String client, String method, String target, String protocol, String referer, String userAgent,
                    String requestId) {
        this.client = client;
        this.method = method;
        this.target = target;
        this.protocol = protocol;
        this.referer = referer;
        this.userAgent = userAgent;
        this.requestId = requestId;
    }

    public String requestId() {
        return requestId;
    }

    /** The route that took it, by its prefix ({@code /} for a single app), or null for none. */
    public void routed(String prefix) {
        this.route = prefix;
    }

    /** A worker was leased after waiting {@code waitNanos} in the queue (0 when one was free). */
    public void leased(String workerName, long waitNanos) {
        this.worker = workerName;
        this.queueWaitNanos = waitNanos;
    }

    /** The response body the client was sent, in bytes. */
    public void sentBody(long bytes) {
        this.bodyBytes = bytes;
    }

    /** The worker answered 101 and the connection became a WebSocket, which has now ended. */
    public void markSwitchedProtocols() {
        this.switchedProtocols = true;
    }

    public boolean switchedProtocols() {
        return switchedProtocols;
    }

    /** valve answered itself rather than passing on a worker's answer, for {@code reason}. */
    public void failed(String reason) {
        this.failure = reason;
    }
}
