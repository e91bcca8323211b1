package dev.valve.pool;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.HashSet;
import java.util.Random;
import java.util.Set;

import org.junit.jupiter.api.Test;

class RecyclingTest {
    @Test
    void offNeverLimits() {
        assertEquals(0, Recycling.OFF.requestLimit(new Random(1)));
        assertFalse(Recycling.OFF.checksMemory());
        assertFalse(Recycling.OFF.overMemory(Long.MAX_VALUE));
    }

    @Test
    void jitterAddsZeroToItsValueEachTimeDrawnAnew() {
        Recycling recycling = new Recycling(100, 3, 0);
        Random random = new Random(42);
        Set<Long> seen = new HashSet<>();
        for (int i = 0; i < 200; i++) {
            long limit = recycling.requestLimit(random);
            assertTrue(limit >= 100 && limit <= 103, "limit " + limit);
            seen.add(limit);
        }
        assertEquals(Set.of(100L, 101L, 102L, 103L), seen);
        assertEquals(7, new Recycling(7, 0, 0).requestLimit(random));
    }

    @Test
    void memoryIsOverOnlyAboveTheLimitAndWhenKnown() {
        Recycling recycling = new Recycling(0, 0, 1000);
        assertTrue(recycling.checksMemory());
        assertFalse(recycling.overMemory(1000));
        assertTrue(recycling.overMemory(1001));
        assertFalse(recycling.overMemory(-1), "unknown memory is never over");
    }

    @Test
    void negativeLimitsAreRefused() {
        assertThrows(IllegalArgumentException.class, () -> new Recycling(-1, 0, 0));
        assertThrows(IllegalArgumentException.class, () -> new Recycling(0, 0, -1));
    }
}
