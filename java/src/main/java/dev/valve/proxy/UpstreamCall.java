package dev.valve.proxy;

import java.io.IOException;
import java.net.ConnectException;
import java.net.SocketTimeoutException;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.atomic.AtomicBoolean;

import dev.valve.pool.ExitReason;
import dev.valve.pool.Lease;
import dev.valve.pool.ManagedProcess;
import dev.valve.pool.Place;

/**
 * One request's use of one leased upstream, from the lease to exactly one end: the upstream is
 * released when it answered completely or when the client no longer wants the answer, and
 * discarded (stopped and replaced) when it failed or may be in any doubt. Every path ends it:
 * {@link #close()} discards unless another end came first, so a try-with-resources, or the
 * thread the call is handed to, can never leave an upstream leased.
 *
 * <p>The request goes over the upstream's kept connection when it has one. Such a connection
 * may have been closed by the worker since its last request; if it fails before any of the
 * answer arrived, the request is sent once more on a fresh connection. That is safe for every
 * method: a worker answers one request at a time, so one that sent nothing back never ran the
 * request unless its process died, and then the fresh connection fails as well (502).
 */
final class UpstreamCall implements AutoCloseable {
    private static final Duration CONNECT_TIMEOUT = Duration.ofSeconds(5);
    /**
     * How long a broken connection waits to learn whether the worker died. A killed process
     * tears down its memory before its sockets close, so for tens of milliseconds its port still
     * accepts connections, which it then resets.
     */
    private static final Duration DEATH_WAIT = Duration.ofSeconds(1);

    /** Why a call failed before any of the response reached the client. */
    static final class FailedException extends Exception {
        private static final long serialVersionUID = 1L;
        final Failure failure;

        FailedException(Failure failure, Throwable cause) {
            super(failure.name(), cause, false, false);
            this.failure = failure;
        }
    }

    private final Lease lease;
    private final KeptConnections kept;
    private final AtomicBoolean ended = new AtomicBoolean();
    private UpstreamConnection connection;

    UpstreamCall(Lease lease, KeptConnections kept) {
        this.lease = lease;
        this.kept = kept;
    }

    String upstreamName() {
        return lease.upstream().name();
    }

    /** Sends the request and reads the response head; on failure the call has already ended. */
    UpstreamConnection.Response send(String method, String target, List<String[]> headers, Spool body,
                                     boolean headRequest, Duration readTimeout) throws FailedException {
        try {
            connection = kept.take(lease.upstream());
            if (connection != null) {
                try {
                    return exchange(method, target, headers, body, headRequest);
                } catch (IOException e) {
                    if (e instanceof SocketTimeoutException || connection.answered()) {
                        throw e;
                    }
                    KeptConnections.closeQuietly(connection);
                }
            }
            connection = openFresh(readTimeout);
            return exchange(method, target, headers, body, headRequest);
        } catch (IOException e) {
            fail(e);
            throw new FailedException(classify(e), e);
        }
    }

    /**
     * Sends a WebSocket handshake on a fresh connection, which after a 101 is {@link #upgraded()}:
     * a kept one may be closed by the worker at any moment, and this one is never given back.
     */
    UpstreamConnection.Response upgrade(String target, List<String[]> headers, Duration readTimeout)
            throws FailedException {
        try {
            connection = openFresh(readTimeout);
            return exchange("GET", target, headers, null, false);
        } catch (IOException e) {
            fail(e);
            throw new FailedException(classify(e), e);
        }
    }

    /** After a 101: the connection, now the caller's to tunnel through and to close. */
    WebSocketTunnel.End upgraded() throws IOException {
        try {
            return connection.upgraded();
        } catch (IOException e) {
            fail(e);
            throw e;
        }
    }

    /** After a 101: the upstream holds a place for the WebSocket instead of the lease, and the call ends. */
    Place keepPlace() {
        if (!ended.compareAndSet(false, true)) {
            throw new IllegalStateException("the call has already ended");
        }
        return lease.keepPlace();
    }

    private UpstreamConnection openFresh(Duration readTimeout) throws IOException {
        return UpstreamConnection.open(lease.upstream().host(), lease.upstream().port(), CONNECT_TIMEOUT, readTimeout,
                true);
    }

    private UpstreamConnection.Response exchange(String method, String target, List<String[]> headers, Spool body,
                                                 boolean headRequest) throws IOException {
        connection.send(method, target, headers, body);
        return connection.receive(headRequest);
    }

    /**
     * Whether the connection failed because the worker's process died: it refused the connection,
     * or its process is gone (or goes within {@link #DEATH_WAIT}). Only for a call that failed
     * before any of the answer arrived; false for upstreams that are not processes of ours.
     */
    boolean upstreamDied(Throwable failure) {
        if (failure instanceof ConnectException) {
            return true;
        }
        ManagedProcess process = lease.upstream().process().orElse(null);
        if (process == null) {
            return false;
        }
        long deadline = System.nanoTime() + DEATH_WAIT.toNanos();
        while (process.isAlive()) {
            if (System.nanoTime() - deadline > 0) {
                return false;
            }
            try {
                Thread.sleep(20);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return false;
            }
        }
        return true;
    }

    /** The mapping from what went wrong on the worker leg to what the client is told. */
    static Failure classify(Throwable error) {
        if (error instanceof SocketTimeoutException) {
            return Failure.UPSTREAM_TIMEOUT;
        }
        if (error instanceof UpstreamConnection.BadResponseException || !(error instanceof IOException)) {
            return Failure.BAD_UPSTREAM_RESPONSE;
        }
        return Failure.UPSTREAM_BROKEN;
    }

    /** The upstream delivered its whole response: it takes the next request, on the same connection if it can. */
    void complete() {
        if (ended.compareAndSet(false, true)) {
            // A worker already exiting would leave its connection parked after its departure.
            boolean alive = lease.upstream().process().map(ManagedProcess::isAlive).orElse(true);
            if (connection != null && connection.reusable() && alive) {
                kept.park(lease.upstream(), connection);
            } else if (connection != null) {
                KeptConnections.closeQuietly(connection);
            }
            lease.release();
        }
    }

    /** The client is gone: the upstream is sound, but the rest of this response is unwanted. */
    void abandon() {
        end(null);
    }

    /** The upstream's state is unknown: it is stopped and replaced. */
    void fail() {
        end(ExitReason.FAILED_REQUEST);
    }

    /** The upstream failed with {@code cause}: it is stopped and replaced. */
    void fail(Throwable cause) {
        if (cause instanceof ConnectException && ended.compareAndSet(false, true)) {
            // Nothing reached it: a process that is gone, whatever sessions it served.
            lease.unreachable();
            return;
        }
        end(cause instanceof SocketTimeoutException ? ExitReason.TIMEOUT_KILL : ExitReason.FAILED_REQUEST);
    }

    /** Ends the call as failed unless it already ended. */
    @Override
    public void close() {
        fail();
    }

    /** @param discard why the upstream must go, or null when it is sound */
    private void end(ExitReason discard) {
        if (!ended.compareAndSet(false, true)) {
            return;
        }
        try {
            if (connection != null) {
                KeptConnections.closeQuietly(connection);
            }
        } finally {
            if (discard != null) {
                lease.discard(discard);
            } else {
                lease.release();
            }
        }
    }
}
