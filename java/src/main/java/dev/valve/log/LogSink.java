package dev.valve.log;

import java.io.PrintStream;
import java.time.Duration;
import java.time.LocalTime;
import java.time.format.DateTimeFormatter;
import java.time.temporal.ChronoUnit;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.List;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.ReentrantLock;

/**
 * Engine and worker log lines, each tagged with its source. Under rJava the JVM's stderr is not
 * the R console, so lines are kept in a bounded buffer that R drains and prints; a standalone
 * engine may also echo them to a stream. When R does not drain, the oldest lines are dropped and
 * the drop is reported, so memory stays bounded.
 *
 * <p>The echo is written by one platform thread of its own: with an access log line per request,
 * a stream that does not keep up (a full pipe) would otherwise block request threads in a write.
 * Lines it cannot take in time are dropped and the drop is reported on the stream.
 */
public final class LogSink {
    private static final DateTimeFormatter TIME = DateTimeFormatter.ofPattern("HH:mm:ss.SSS");
    /** The most lines one write of the echo carries. */
    private static final int ECHO_BATCH = 256;

    private final int capacity;
    private final ReentrantLock lock = new ReentrantLock();
    private final Deque<String> lines = new ArrayDeque<>();
    private long dropped;
    /** Lines for the echo's writer; null without an echo. */
    private final BlockingQueue<String> echoQueue;
    private final AtomicLong echoDropped = new AtomicLong();
    /** Lines queued for the echo and lines it wrote, so {@link #flush} knows when it is done. */
    private final AtomicLong echoQueued = new AtomicLong();
    private final AtomicLong echoWritten = new AtomicLong();

    /**
     * @param capacity lines kept until drained
     * @param echo     stream every line is also written to, or null
     */
    public LogSink(int capacity, PrintStream echo) {
        if (capacity < 1) {
            throw new IllegalArgumentException("capacity must be >= 1");
        }
        this.capacity = capacity;
        this.echoQueue = echo == null ? null : new ArrayBlockingQueue<>(capacity);
        if (echo != null) {
            Thread.ofPlatform().daemon().name("valve-log-echo").start(() -> writeEcho(echo));
        }
    }

    /** Adds one line from {@code source}, e.g. {@code "valve"} or {@code "worker 2"}. */
    public void add(String source, String message) {
        String line = LocalTime.now().truncatedTo(ChronoUnit.MILLIS).format(TIME)
                + " [" + source + "] " + message;
        if (echoQueue != null) {
            if (echoQueue.offer(line)) {
                echoQueued.incrementAndGet();
            } else {
                echoDropped.incrementAndGet();
            }
        }
        lock.lock();
        try {
            if (lines.size() == capacity) {
                lines.pollFirst();
                dropped++;
            }
            lines.addLast(line);
        } finally {
            lock.unlock();
        }
    }

    /**
     * Writes what has queued up in one go: under load (an access line per request) one write and
     * one wake-up serve many lines rather than one each.
     */
    private void writeEcho(PrintStream echo) {
        List<String> batch = new ArrayList<>(ECHO_BATCH);
        StringBuilder text = new StringBuilder();
        try {
            while (true) {
                batch.add(echoQueue.take());
                echoQueue.drainTo(batch, ECHO_BATCH - 1);
                long lost = echoDropped.getAndSet(0);
                if (lost > 0) {
                    text.append("[valve] ").append(lost).append(" log lines were not written: this stream did not keep up\n");
                }
                for (String line : batch) {
                    text.append(line).append('\n');
                }
                echo.print(text);
                echo.flush();
                echoWritten.addAndGet(batch.size());
                batch.clear();
                text.setLength(0);
            }
        } catch (InterruptedException e) {
            // Never interrupted by valve; a daemon thread ends with the JVM.
        }
    }

    /** Waits up to {@code timeout} for the echo to write every line queued so far: call before the JVM exits. */
    public void flush(Duration timeout) {
        long target = echoQueued.get();
        long deadline = System.nanoTime() + timeout.toNanos();
        while (echoWritten.get() < target && System.nanoTime() - deadline < 0) {
            try {
                Thread.sleep(5);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            }
        }
    }

    /** Removes and returns every buffered line, oldest first. */
    public String[] drain() {
        lock.lock();
        try {
            List<String> out = new ArrayList<>(lines.size() + 1);
            if (dropped > 0) {
                out.add("[valve] " + dropped + " log lines were dropped because nobody read them");
                dropped = 0;
            }
            out.addAll(lines);
            lines.clear();
            return out.toArray(String[]::new);
        } finally {
            lock.unlock();
        }
    }
}
