package dev.valve.proxy;

import java.io.IOException;
import java.net.SocketTimeoutException;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.atomic.AtomicBoolean;

import dev.valve.pool.Lease;

/**
 * One request's use of one leased upstream, from the lease to exactly one end: the upstream is
 * released when it answered completely or when the client no longer wants the answer, and
 * discarded (stopped and replaced) when it failed or may be in any doubt. Every path ends it:
 * {@link #close()} discards unless another end came first, so a try-with-resources, or the
 * thread the call is handed to, can never leave an upstream leased.
 */
final class UpstreamCall implements AutoCloseable {
    private static final Duration CONNECT_TIMEOUT = Duration.ofSeconds(5);

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
    private final AtomicBoolean ended = new AtomicBoolean();
    private UpstreamExchange exchange;

    UpstreamCall(Lease lease) {
        this.lease = lease;
    }

    String upstreamName() {
        return lease.upstream().name();
    }

    /** Sends the request and reads the response head; on failure the call has already ended. */
    UpstreamExchange.Response send(String method, String target, List<String[]> headers, Spool body,
                                   boolean headRequest, Duration readTimeout) throws FailedException {
        try {
            exchange = UpstreamExchange.open(lease.upstream().host(), lease.upstream().port(), CONNECT_TIMEOUT,
                    readTimeout);
            exchange.send(method, target, headers, body);
            return exchange.receive(headRequest);
        } catch (IOException e) {
            fail();
            throw new FailedException(classify(e), e);
        }
    }

    /** The mapping from what went wrong on the worker leg to what the client is told. */
    static Failure classify(Throwable error) {
        if (error instanceof SocketTimeoutException) {
            return Failure.UPSTREAM_TIMEOUT;
        }
        if (error instanceof UpstreamExchange.BadResponseException || !(error instanceof IOException)) {
            return Failure.BAD_UPSTREAM_RESPONSE;
        }
        return Failure.UPSTREAM_BROKEN;
    }

    /** The upstream delivered its whole response: it takes the next request. */
    void complete() {
        end(false);
    }

    /** The client is gone: the upstream is sound, but the rest of this response is unwanted. */
    void abandon() {
        end(false);
    }

    /** The upstream failed, or its state is unknown: it is stopped and replaced. */
    void fail() {
        end(true);
    }

    /** Ends the call as failed unless it already ended. */
    @Override
    public void close() {
        fail();
    }

    private void end(boolean discard) {
        if (!ended.compareAndSet(false, true)) {
            return;
        }
        try {
            if (exchange != null) {
                exchange.close();
            }
        } catch (IOException | RuntimeException e) {
            // The connection is ours alone and going away either way.
        } finally {
            if (discard) {
                lease.discard();
            } else {
                lease.release();
            }
        }
    }
}
