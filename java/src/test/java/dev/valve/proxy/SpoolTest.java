package dev.valve.proxy;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
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

    private static byte[] drain(Spool spool) throws IOException {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        spool.transferTo(out);
        return out.toByteArray();
    }
}
