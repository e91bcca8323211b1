package dev.valve.log;

import java.io.PrintStream;
import java.time.LocalTime;
import java.time.format.DateTimeFormatter;
import java.time.temporal.ChronoUnit;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.List;
import java.util.concurrent.locks.ReentrantLock;

/**
 * Engine and worker log lines, each tagged with its source. Under rJava the JVM's stderr is not
 * the R console, so lines are kept in a bounded buffer that R drains and prints; a standalone
 * engine may also echo them to a stream. When R does not drain, the oldest lines are dropped and
 * the drop is reported, so memory stays bounded.
 */
public final class LogSink {
    private static final DateTimeFormatter TIME = DateTimeFormatter.ofPattern("HH:mm:ss.SSS");

    private final int capacity;
    private final PrintStream echo;
    private final ReentrantLock lock = new ReentrantLock();
    private final Deque<String> lines = new ArrayDeque<>();
    private long dropped;

    /**
     * @param capacity lines kept until drained
     * @param echo     stream every line is also written to, or null
     */
    public LogSink(int capacity, PrintStream echo) {
        if (capacity < 1) {
            throw new IllegalArgumentException("capacity must be >= 1");
        }
        this.capacity = capacity;
        this.echo = echo;
    }

    /** Adds one line from {@code source}, e.g. {@code "valve"} or {@code "worker 2"}. */
    public void add(String source, String message) {
        String line = LocalTime.now().truncatedTo(ChronoUnit.MILLIS).format(TIME)
                + " [" + source + "] " + message;
        if (echo != null) {
            echo.println(line);
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
