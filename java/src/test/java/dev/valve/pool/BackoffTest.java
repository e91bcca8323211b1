package dev.valve.pool;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.concurrent.atomic.AtomicLong;

import org.junit.jupiter.api.Test;

class BackoffTest {
    private final AtomicLong clock = new AtomicLong(1_000_000_000L);
    private final Backoff backoff = new Backoff(Duration.ofMillis(250), Duration.ofSeconds(30), clock::get);

    private long remainingMillis() {
        return Duration.ofNanos(backoff.remaining()).toMillis();
    }

    @Test
    void launchesAtOnceUntilSomethingFails() {
        assertTrue(backoff.remaining() <= 0);
    }

    @Test
    void theFirstFailureIsRetriedAtOnceThenTheDelayDoublesUpToTheMaximum() {
        long[] expected = {0, 250, 500, 1000, 2000, 4000, 8000, 16000, 30000, 30000};
        for (long millis : expected) {
            backoff.failure();
            assertEquals(millis, Math.max(0, remainingMillis()));
        }
        for (int i = 0; i < 100; i++) {
            backoff.failure();
        }
        assertEquals(30000, remainingMillis(), "no overflow after many failures");
    }

    @Test
    void theDelayRunsFromTheFailureOnTheGivenClock() {
        backoff.failure();
        backoff.failure();
        assertEquals(250, remainingMillis());
        clock.addAndGet(Duration.ofMillis(200).toNanos());
        assertEquals(50, remainingMillis());
        clock.addAndGet(Duration.ofMillis(50).toNanos());
        assertTrue(backoff.remaining() <= 0);
    }

    @Test
    void aSuccessClearsTheDelayAndTheCount() {
        for (int i = 0; i < 5; i++) {
            backoff.failure();
        }
        assertEquals(2000, remainingMillis());
        backoff.success();
        assertTrue(backoff.remaining() <= 0, "launches may start at once");
        backoff.failure();
        assertTrue(backoff.remaining() <= 0, "the next failure is a first failure again");
        backoff.failure();
        assertEquals(250, remainingMillis());
    }
}
