package dev.valve.worker;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Set;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class SourceWatcherTest {
    @TempDir
    Path dir;

    @Test
    void aSaveOfAnRFileIsReportedOnceByNameAndOtherFilesAreIgnored() throws Exception {
        BlockingQueue<Set<String>> reports = new LinkedBlockingQueue<>();
        try (SourceWatcher watcher = new SourceWatcher(dir, reports::add)) {
            Files.writeString(dir.resolve("notes.txt"), "not code");
            // An editor's save: a temporary file renamed over the source, then written again.
            Path temporary = Files.writeString(dir.resolve(".plumber.R.swp"), "partial");
            Files.move(temporary, dir.resolve("plumber.R"));
            Files.writeString(dir.resolve("plumber.R"), "#* @get /\nfunction() 2\n");
            assertEquals(Set.of("plumber.R"), reports.poll(30, TimeUnit.SECONDS));

            Files.writeString(dir.resolve("notes.txt"), "still not code");
            assertEquals(null, reports.poll(SourceWatcher.QUIET.toMillis() * 3, TimeUnit.MILLISECONDS),
                    "a change to another file reloads nothing");

            Files.writeString(dir.resolve("helpers.r"), "f <- function() 1\n");
            assertEquals(Set.of("helpers.r"), reports.poll(30, TimeUnit.SECONDS));
        }
    }

    @Test
    void onlyRSourcesCount() {
        assertTrue(SourceWatcher.isRSource(Path.of("plumber.R")));
        assertTrue(SourceWatcher.isRSource(Path.of("entrypoint.r")));
        assertFalse(SourceWatcher.isRSource(Path.of("data.Rds")));
        assertFalse(SourceWatcher.isRSource(Path.of("README")));
    }
}
