package dev.valve.proxy;

import java.util.concurrent.ArrayBlockingQueue;

/**
 * Reusable 64 KiB copy buffers. Allocating several per request made the engine's garbage
 * collector, not the proxying, dominate its tail latency under load.
 */
final class Buffers {
    static final int SIZE = 64 * 1024;
    private static final ArrayBlockingQueue<byte[]> FREE = new ArrayBlockingQueue<>(256);

    private Buffers() {
    }

    static byte[] take() {
        byte[] buffer = FREE.poll();
        return buffer != null ? buffer : new byte[SIZE];
    }

    /** Returns a buffer for reuse; beyond the pool's size it is left to the collector. */
    static void give(byte[] buffer) {
        FREE.offer(buffer);
    }
}
