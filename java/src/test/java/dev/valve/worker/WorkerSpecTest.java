package dev.valve.worker;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** How a served directory is told apart, as Faucet does: plumber files first, then a Shiny app. */
class WorkerSpecTest {
    @TempDir
    Path dir;

    @Test
    void aDirectoryWithAppRIsAShinyApp() throws IOException {
        Files.writeString(dir.resolve("app.R"), "");
        WorkerSpec spec = WorkerSpec.of(WorkerSpec.DIR, dir, null);
        assertEquals(WorkerSpec.SHINY, spec.mode());
        assertTrue(spec.servesSessions());
        assertEquals(WorkerProtocol.SHINY_SECRET_HEADER, WorkerProtocol.secretHeader(spec));
        assertEquals(dir.toAbsolutePath().normalize(), spec.workingDirectory());
    }

    @Test
    void uiAndServerMakeAShinyAppOnlyTogether() throws IOException {
        Files.writeString(dir.resolve("ui.R"), "");
        assertEquals(WorkerSpec.DIR, WorkerSpec.directoryMode(dir));
        Files.writeString(dir.resolve("server.R"), "");
        assertEquals(WorkerSpec.SHINY, WorkerSpec.directoryMode(dir));
    }

    @Test
    void plumberFilesWinOverAShinyApp() throws IOException {
        Files.writeString(dir.resolve("app.R"), "");
        Files.writeString(dir.resolve("plumber.R"), "");
        WorkerSpec spec = WorkerSpec.of(WorkerSpec.DIR, dir, null);
        assertEquals(WorkerSpec.DIR, spec.mode());
        assertFalse(spec.servesSessions());
        assertEquals(WorkerProtocol.SECRET_HEADER, WorkerProtocol.secretHeader(spec));
        // Unless Shiny is asked for by name.
        assertEquals(WorkerSpec.SHINY, WorkerSpec.of(WorkerSpec.SHINY, dir, null).mode());
    }

    @Test
    void shinyModeNeedsAShinyApp() throws IOException {
        Files.writeString(dir.resolve("plumber.R"), "");
        IllegalArgumentException error = assertThrows(IllegalArgumentException.class,
                () -> WorkerSpec.of(WorkerSpec.SHINY, dir, null));
        assertTrue(error.getMessage().contains("is not a Shiny app"), error.getMessage());
    }
}
