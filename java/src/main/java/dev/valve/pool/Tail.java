package dev.valve.pool;

import java.util.ArrayDeque;
import java.util.Deque;
import java.util.concurrent.locks.ReentrantLock;

/** A process's last lines of output, for the error when it fails to start. */
final class Tail {
    private static final int LINES = 40;

    private final ReentrantLock lock = new ReentrantLock();
    private final Deque<String> lines = new ArrayDeque<>();

    void add(String line) {
        lock.lock();
        try {
            if (lines.size() == LINES) {
                lines.pollFirst();
            }
            lines.addLast(line);
        } finally {
            lock.unlock();
        }
    }

    String describe() {
        lock.lock();
        try {
            return lines.isEmpty() ? "; it printed nothing" : ". Its last output:\n" + String.join("\n", lines);
        } finally {
            lock.unlock();
        }
    }
}
