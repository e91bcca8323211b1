package dev.valve;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;

import org.junit.jupiter.api.Test;

/** One collection per quiet spell after traffic; none while busy, none when nothing was served. */
class IdleHeapTest {
    private final AtomicLong served = new AtomicLong();
    private final AtomicBoolean idle = new AtomicBoolean(true);
    private final AtomicInteger collections = new AtomicInteger();
    private final IdleHeap heap = new IdleHeap(served::get, idle::get, collections::incrementAndGet);

    @Test
    void anEngineThatNeverServedIsLeftAlone() {
        heap.tick();
        heap.tick();
        assertEquals(0, collections.get());
    }

    @Test
    void aQuietPeriodAfterTrafficCollectsOnceUntilTrafficComesBack() {
        served.set(10);
        heap.tick();
        assertEquals(0, collections.get(), "requests came in during this period");
        heap.tick();
        assertEquals(1, collections.get(), "a whole period without a request");
        heap.tick();
        heap.tick();
        assertEquals(1, collections.get(), "once per quiet spell");
        served.set(11);
        heap.tick();
        heap.tick();
        assertEquals(2, collections.get(), "the next quiet spell collects again");
    }

    @Test
    void aRequestStillInFlightPutsTheCollectionOff() {
        served.set(1);
        heap.tick();
        idle.set(false);
        heap.tick();
        assertEquals(0, collections.get(), "a long request is in flight");
        idle.set(true);
        heap.tick();
        assertEquals(1, collections.get());
    }
}
