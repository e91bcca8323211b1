package dev.valve.observe;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.Map;

import dev.valve.pool.PoolStatus;

import org.junit.jupiter.api.Test;

class ReadinessTest {
    private static PoolStatus pool(int starting, int idle, int busy, boolean canLaunch) {
        return new PoolStatus(starting, idle, busy, 0, 0, 0, List.of(), Map.of(), canLaunch);
    }

    @Test
    void readyWhenAWorkerIsReadyOrOneCanStartAtOnce() {
        assertTrue(Readiness.of(pool(0, 1, 0, true), false).ready());
        assertTrue(Readiness.of(pool(0, 0, 2, false), false).ready(), "busy workers still take queued traffic");
        assertTrue(Readiness.of(pool(0, 0, 0, true), false).ready(), "n_min = 0: one starts on demand");
    }

    @Test
    void notReadyWhileTheFirstWorkersStartOrStartsAreFailingOrWhileStopping() {
        assertFalse(Readiness.of(pool(1, 0, 0, true), false).ready());
        assertFalse(Readiness.of(pool(0, 0, 0, false), false).ready(), "backing off, or service mode without pods");
        assertFalse(Readiness.of(pool(0, 3, 0, true), true).ready());
    }
}
