package dev.valve.proxy;

import java.io.IOException;
import java.io.InputStream;
import java.io.InterruptedIOException;
import java.time.Duration;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.ScheduledThreadPoolExecutor;
import java.util.concurrent.TimeUnit;

import io.helidon.http.Headers;
import io.helidon.http.HttpPrologue;
import io.helidon.webserver.ConnectionContext;
import io.helidon.webserver.http1.Http1ConnectionListener;

/**
 * Closes client connections that stall: in their headers or in their body.
 *
 * <p>Helidon 4.5 applies no read timeout to either: its idle timer only covers a connection that
 * waits for a request line. Each connection is read by its own virtual thread from an
 * interruptible socket channel, so interrupting that thread closes the connection and ends the
 * read. The guard arms an interrupt when a request line arrives and disarms it when the headers
 * are complete (as a Helidon receive listener, on the connection's thread), and does the same
 * around every read of a request body.
 */
public final class StallGuard implements Http1ConnectionListener, AutoCloseable {
    private final Duration timeout;
    private final ThreadLocal<ScheduledFuture<?>> headerAlarm = new ThreadLocal<>();
    private final ScheduledThreadPoolExecutor timer = new ScheduledThreadPoolExecutor(1, r -> {
        Thread thread = new Thread(r, "valve-stall-guard");
        thread.setDaemon(true);
        return thread;
    });

    public StallGuard(Duration timeout) {
        this.timeout = timeout;
        // An alarm is armed and cancelled for every request and every body read; left in the
        // queue until they would have fired, cancelled alarms pile up by the hundred thousand.
        timer.setRemoveOnCancelPolicy(true);
    }

    @Override
    public void prologue(ConnectionContext context, HttpPrologue prologue) {
        headerAlarm.set(arm());
    }

    @Override
    public void headers(ConnectionContext context, Headers headers) {
        ScheduledFuture<?> alarm = headerAlarm.get();
        if (alarm != null) {
            headerAlarm.remove();
            disarm(alarm);
        }
    }

    /** {@code in}, with every read limited to the timeout. */
    InputStream guard(InputStream in) {
        return new BlockInputStream() {
            @Override
            public int read(byte[] buffer, int offset, int length) throws IOException {
                ScheduledFuture<?> alarm = arm();
                try {
                    return in.read(buffer, offset, length);
                } finally {
                    if (disarm(alarm)) {
                        throw new InterruptedIOException("the client sent nothing for " + timeout.toMillis() + " ms");
                    }
                }
            }

            @Override
            public void close() throws IOException {
                in.close();
            }
        };
    }

    private ScheduledFuture<?> arm() {
        return timer.schedule(Thread.currentThread()::interrupt, timeout.toNanos(), TimeUnit.NANOSECONDS);
    }

    /** Cancels the alarm; true if it already went off, whose interrupt is then cleared. */
    private static boolean disarm(ScheduledFuture<?> alarm) {
        alarm.cancel(false);
        // An alarm that fired just as the read returned must not leak into later work.
        return Thread.interrupted();
    }

    /** Alarms armed and not yet disarmed or fired. */
    int pendingAlarms() {
        return timer.getQueue().size();
    }

    @Override
    public void close() {
        timer.shutdownNow();
    }
}
