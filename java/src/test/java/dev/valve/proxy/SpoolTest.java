package dev.valve.proxy;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.file.Path;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The spool keeps order across memory and file, and all spools share one memory budget. */
class SpoolTest {
    @TempDir
    Path directory;

    @Test
    void pastTheSharedBudgetBodiesGoToDiskAndReadBackWhole() throws IOException {
        MemoryBudget budget = new MemoryBudget(10);
        try (Spool first = new Spool(1024, budget, directory); Spool second = new Spool(1024, budget, directory)) {
            byte[] eight = "01234567".getBytes();
            first.write(eight, 0, eight.length);
            second.write(eight, 0, eight.length);
            assertFalse(first.spilled(), "within the budget, memory");
            assertTrue(second.spilled(), "the budget is spent: the second body goes to disk");
            first.finish();
            second.finish();
            assertArrayEquals(eight, drain(first));
            assertArrayEquals(eight, drain(second));
        }
        try (Spool third = new Spool(1024, budget, directory)) {
            byte[] ten = "0123456789".getBytes();
            third.write(ten, 0, ten.length);
            assertFalse(third.spilled(), "what was read (or closed) went back to the budget");
        }
    }

    @Test
    void writingOutAFinishedSpoolLeavesItWhole() throws IOException {
        try (Spool spool = new Spool(4, new MemoryBudget(1 << 20), directory)) {
            byte[] data = "abcdefghij".getBytes();
            spool.write(data, 0, 3);
            spool.write(data, 3, 7);
            spool.finish();
            assertTrue(spool.spilled(), "past memory_buffer, the rest is on disk");
            for (int i = 0; i < 2; i++) {
                ByteArrayOutputStream out = new ByteArrayOutputStream();
                spool.writeTo(out);
                assertArrayEquals(data, out.toByteArray(), "written out again, unchanged");
            }
        }
    }

    @Test
    void aDeclaredBodyThatFitsIsTakenWholeAndItsMemoryGivenBack() throws IOException {
        MemoryBudget budget = new MemoryBudget(100);
        byte[] data = "0123456789".repeat(5).getBytes();
        try (Spool spool = new Spool(64, budget, directory)) {
            spool.fill(new ByteArrayInputStream(data), data.length, 1000);
            assertFalse(spool.spilled());
            assertFalse(budget.reserve(51), "the body holds 50 of the 100 bytes");
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            spool.writeTo(out);
            assertArrayEquals(data, out.toByteArray());
        }
        assertTrue(budget.reserve(100), "closing the spool gave its bytes back");
    }

    @Test
    void aDeclaredBodyTheBudgetCannotHoldGoesToDisk() throws IOException {
        byte[] data = "0123456789".repeat(5).getBytes();
        try (Spool spool = new Spool(64, new MemoryBudget(20), directory)) {
            spool.fill(new ByteArrayInputStream(data), data.length, 1000);
            assertTrue(spool.spilled());
            assertArrayEquals(data, drain(spool));
        }
    }

    @Test
    void aBodyShorterOrLongerThanDeclaredIsRefusedAndCostsNoMemory() throws IOException {
        MemoryBudget budget = new MemoryBudget(100);
        byte[] data = "0123456789".getBytes();
        for (int declared : new int[] {11, 9}) {
            try (Spool spool = new Spool(64, budget, directory)) {
                assertThrows(EOFException.class,
                        () -> spool.fill(new ByteArrayInputStream(data), declared, 1000), "declared " + declared);
            }
        }
        assertTrue(budget.reserve(100), "nothing kept from the refused bodies");
    }

    @Test
    void aDeclaredLengthPastTheLimitIsRefusedBeforeReading() {
        try (Spool spool = new Spool(64, new MemoryBudget(100), directory)) {
            InputStream unread = new InputStream() {
                @Override
                public int read() {
                    throw new AssertionError("read a body already known to be too large");
                }
            };
            assertThrows(Spool.BodyTooLargeException.class, () -> spool.fill(unread, 11, 10));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private static byte[] drain(Spool spool) throws IOException {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        spool.transferTo(out);
        return out.toByteArray();
    }
}
