package dev.valve.pool;

import static org.junit.jupiter.api.Assertions.assertEquals;

import org.junit.jupiter.api.Test;

class ScalingTest {
    private final Scaling scaling = new Scaling(2, 5);

    @Test
    void anEmptyPoolStartsNMin() {
        assertEquals(2, scaling.launches(0, 0, 0, 0, 0));
        assertEquals(1, scaling.launches(0, 0, 1, 0, 0), "one already starting counts toward n_min");
        assertEquals(0, new Scaling(0, 5).launches(0, 0, 0, 0, 0));
    }

    @Test
    void oneLaunchPerWaiterNotCoveredByALaunchInProgress() {
        // Two busy, none idle: three waiters need three, plus the spare.
        assertEquals(3, scaling.launches(2, 0, 0, 3, 0), "capped at n_max");
        assertEquals(2, scaling.launches(2, 0, 1, 2, 0), "the one starting covers a waiter");
        assertEquals(0, scaling.launches(2, 0, 3, 2, 0), "launches in progress cover every waiter and the spare");
    }

    @Test
    void aSpareOnlyWhenEveryReadyUpstreamIsBusy() {
        assertEquals(1, scaling.launches(2, 0, 0, 0, 0));
        assertEquals(0, scaling.launches(2, 0, 0, 0, 1), "one idle is already the spare");
        assertEquals(0, scaling.launches(2, 0, 1, 0, 0), "one starting is already the spare");
        assertEquals(2, new Scaling(0, 5).launches(0, 0, 0, 2, 0), "no spare for a pool with nothing ready");
    }

    @Test
    void anUpstreamOnItsWayOutCountsOnlyAsBusy() {
        assertEquals(1, scaling.launches(1, 1, 0, 0, 0), "n_min 2, one staying: its replacement, now");
        assertEquals(1, new Scaling(1, 1).launches(0, 1, 0, 0, 0), "its replacement may start beside it, even at n_max");
        assertEquals(1, new Scaling(0, 5).launches(0, 1, 0, 0, 0), "the spare, as for any busy upstream");
        assertEquals(0, new Scaling(0, 5).launches(0, 1, 0, 0, 1), "an idle one already covers the next request");
    }

    @Test
    void neverAboveNMax() {
        assertEquals(0, scaling.launches(5, 0, 0, 10, 0));
        assertEquals(0, scaling.launches(3, 0, 2, 10, 0));
        assertEquals(1, scaling.launches(4, 0, 0, 10, 0));
    }

    @Test
    void neverNegative() {
        assertEquals(0, scaling.launches(5, 0, 0, 0, 5));
        assertEquals(0, scaling.launches(0, 0, 4, 0, 0));
    }
}
