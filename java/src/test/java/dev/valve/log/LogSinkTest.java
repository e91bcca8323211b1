package dev.valve.log;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.OutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.concurrent.CountDownLatch;

import dev.valve.testing.Await;

import org.junit.jupiter.api.Test;

class LogSinkTest {
    /** A stream that takes nothing until it is opened, like a pipe nobody reads. */
    private static final class StuckStream extends OutputStream {
        final CountDownLatch open = new CountDownLatch(1);
        final ByteArrayOutputStream written = new ByteArrayOutputStream();

        @Override
        public void write(int b) {
            write(new byte[] {(byte) b}, 0, 1);
        }

        @Override
        public void write(byte[] bytes, int offset, int length) {
            try {
                open.await();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            }
            synchronized (written) {
                written.write(bytes, offset, length);
            }
        }

        String text() {
            synchronized (written) {
                return written.toString(StandardCharsets.UTF_8);
            }
        }
    }

    @Test
    void aStuckEchoNeverHoldsTheThreadsThatLog() throws Exception {
        StuckStream stream = new StuckStream();
        LogSink log = new LogSink(100, new PrintStream(stream, true, StandardCharsets.UTF_8));
        Thread logging = Thread.ofVirtual().start(() -> {
            for (int i = 1; i <= 1000; i++) {
                log.add("access", "line " + i);
            }
        });
        Await.until("1000 lines were logged while the stream took nothing", () -> !logging.isAlive());
        assertEquals(101, log.drain().length, "the buffer's own lines, and the report of those dropped from it");

        stream.open.countDown();
        log.flush(Duration.ofSeconds(20));
        log.add("valve", "after");
        log.flush(Duration.ofSeconds(20));
        String text = stream.text();
        assertTrue(text.contains("[access] line 1\n"), text);
        assertTrue(text.contains("log lines were not written: this stream did not keep up"), text);
        assertTrue(text.endsWith("[valve] after\n"), text);
    }
}
