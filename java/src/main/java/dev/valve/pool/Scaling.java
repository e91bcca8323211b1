package dev.valve.pool;

/**
 * How many upstreams to launch, from counts alone, so the rules can be checked without a pool.
 *
 * @param nMin upstreams kept running even when idle
 * @param nMax upstreams never exceeded, counting those still starting
 */
record Scaling(int nMin, int nMax) {

    /**
     * @param live     ready upstreams, idle or busy, that stay
     * @param outgoing ready upstreams that leave once their request is done: they count only
     *                 as busy, for the spare
     * @param starting launches in progress
     * @param waiters  requests waiting for an upstream
     * @param idle     ready upstreams without a request
     * @return how many to launch now, never negative
     */
    int launches(int live, int outgoing, int starting, int waiters, int idle) {
        int coming = live + starting;
        // One spare when every upstream is busy: the next request then finds one already starting
        // instead of waiting a whole R start-up (about half a second) behind the others.
        int spare = idle == 0 && live + outgoing > 0 ? 1 : 0;
        // Launches in progress already cover that many waiters.
        int needed = Math.max(nMin - coming, waiters + spare - starting);
        return Math.max(0, Math.min(needed, nMax - coming));
    }
}
