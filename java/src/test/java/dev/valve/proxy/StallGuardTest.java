package dev.valve.proxy;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.time.Duration;

import org.junit.jupiter.api.Test;

/** The guard arms an alarm per read: one that is disarmed must not linger until it would fire. */
class StallGuardTest {
    @Test
    void disarmedAlarmsLeaveNothingBehind() throws IOException {
        try (StallGuard guard = new StallGuard(Duration.ofSeconds(30))) {
            InputStream in = guard.guard(new ByteArrayInputStream(new byte[10_000]));
            byte[] one = new byte[1];
            while (in.read(one, 0, 1) > 0) {
                // Every read arms and disarms an alarm.
            }
            assertEquals(0, guard.pendingAlarms());
        }
    }
}
