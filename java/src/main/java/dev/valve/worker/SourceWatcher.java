package dev.valve.worker;

import java.io.IOException;
import java.nio.file.ClosedWatchServiceException;
import java.nio.file.FileSystems;
import java.nio.file.Path;
import java.nio.file.StandardWatchEventKinds;
import java.nio.file.WatchEvent;
import java.nio.file.WatchKey;
import java.nio.file.WatchService;
import java.time.Duration;
import java.util.Locale;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;

/**
 * Watches the {@code .R} files of an API's directory (not its subdirectories) and reports the
 * names that changed, for development reloads. An editor's save is often several events (a
 * temporary file, a rename, a write): changes are gathered until the directory has been quiet
 * for {@link #QUIET}, then reported once.
 *
 * <p>The watch blocks, so it runs on its own platform thread, never a virtual one.
 */
public final class SourceWatcher implements AutoCloseable {
    static final Duration QUIET = Duration.ofMillis(300);
    private static final Duration JOIN = Duration.ofSeconds(2);

    private final WatchService service;
    private final Thread thread;

    /**
     * @param directory the API's directory
     * @param onChange  called on the watcher's thread with the names of the changed files
     * @throws IOException when the directory cannot be watched
     */
    public SourceWatcher(Path directory, Consumer<Set<String>> onChange) throws IOException {
        this.service = FileSystems.getDefault().newWatchService();
        try {
            directory.register(service, StandardWatchEventKinds.ENTRY_CREATE, StandardWatchEventKinds.ENTRY_MODIFY,
                    StandardWatchEventKinds.ENTRY_DELETE);
        } catch (IOException | RuntimeException e) {
            service.close();
            throw e;
        }
        this.thread = Thread.ofPlatform().daemon().name("valve-watch").start(() -> watch(onChange));
    }

    private void watch(Consumer<Set<String>> onChange) {
        try {
            while (true) {
                Set<String> changed = new TreeSet<>();
                collect(service.take(), changed);
                WatchKey more;
                while ((more = service.poll(QUIET.toMillis(), TimeUnit.MILLISECONDS)) != null) {
                    collect(more, changed);
                }
                if (!changed.isEmpty()) {
                    onChange.accept(changed);
                }
            }
        } catch (ClosedWatchServiceException | InterruptedException e) {
            // Closed: the engine is stopping.
        }
    }

    private static void collect(WatchKey key, Set<String> changed) {
        for (WatchEvent<?> event : key.pollEvents()) {
            if (event.context() instanceof Path file && isRSource(file)) {
                changed.add(file.toString());
            }
        }
        key.reset();
    }

    static boolean isRSource(Path file) {
        return file.getFileName().toString().toLowerCase(Locale.ROOT).endsWith(".r");
    }

    /** Stops watching; waits a bounded time for the thread. */
    @Override
    public void close() {
        try {
            service.close();
            thread.join(JOIN);
        } catch (IOException e) {
            // Nothing more to release.
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
