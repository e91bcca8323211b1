package dev.valve.proxy;

import java.io.FilterInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.InterruptedIOException;
import java.time.Duration;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;

/**
 * Ends reads from a client that stall longer than a timeout. Helidon 4.5 applies no read timeout
 * to a request body; the handler reads it on its own virtual thread from an interruptible socket
 * channel, so interrupting that thread closes the connection and ends the read.
 */
final class StallGuard implements AutoCloseable {
    private final Duration timeout;
    private final ScheduledExecutorService timer = Executors.newSingleThreadScheduledExecutor(r -> {
        Thread thread = new Thread(r, "valve-stall-guard");
        thread.setDaemon(true);
        return thread;
    });

    StallGuard(Duration timeout) {
        this.timeout = timeout;
    }

    /** {@code in}, with every read limited to the timeout. */
    InputStream guard(InputStream in) {
        return new FilterInputStream(in) {
            @Override
            public int read() throws IOException {
                byte[] one = new byte[1];
                return read(one, 0, 1) < 0 ? -1 : one[0] & 0xff;
            }

            @Override
            public int read(byte[] buffer, int offset, int length) throws IOException {
                Thread reader = Thread.currentThread();
                ScheduledFuture<?> alarm = timer.schedule(reader::interrupt, timeout.toNanos(), TimeUnit.NANOSECONDS);
                try {
                    return super.read(buffer, offset, length);
                } finally {
                    alarm.cancel(false);
                    // An alarm that fired just as the read returned must not leak into later work.
                    if (Thread.interrupted()) {
                        throw new InterruptedIOException("the client sent nothing for " + timeout.toMillis() + " ms");
                    }
                }
            }
        };
    }

    @Override
    public void close() {
        timer.shutdownNow();
    }
}
