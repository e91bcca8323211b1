package dev.valve;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.Map;

import org.junit.jupiter.api.Test;

/** The command line's parsing: flags over environment over defaults, and clear refusals. */
class MainTest {
    @Test
    void valveDefaultsApplyWhenNothingIsGiven() {
        Map<String, String> values = Main.parse(new String[0], Map.of());
        assertEquals("127.0.0.1", values.get("host"));
        assertEquals("3000", values.get("port"));
        assertEquals("plumber.R", values.get("file"));
        assertEquals("3", values.get("n-max"));
        assertEquals("1", values.get("n-min"));
        assertEquals("10", values.get("check-unused"));
        assertEquals("300", values.get("max-age"));
    }

    @Test
    void flagsBeatEnvironmentWhichBeatsPortWhichBeatsDefaults() {
        Map<String, String> env = Map.of("VALVE_N_MAX", "7", "VALVE_PORT", "8001", "PORT", "9000", "VALVE_HOST", "0.0.0.0");
        Map<String, String> values = Main.parse(new String[] {"-n", "5", "--max-age=60"}, env);
        assertEquals("5", values.get("n-max"));
        assertEquals("60", values.get("max-age"));
        assertEquals("8001", values.get("port"));
        assertEquals("0.0.0.0", values.get("host"));
        assertEquals("9000", Main.parse(new String[0], Map.of("PORT", "9000")).get("port"));
    }

    @Test
    void faucetsShapeAndShortFlagsAreAccepted() {
        Map<String, String> values = Main.parse(new String[] {"local", "--dir", "/srv/api", "-h", "0.0.0.0", "-p", "80",
            "-f", "api.R", "-w", "8"}, Map.of());
        assertEquals("/srv/api", values.get("dir"));
        assertEquals("0.0.0.0", values.get("host"));
        assertEquals("80", values.get("port"));
        assertEquals("8", values.get("workers"));
    }

    @Test
    void mistakesAreRefusedWithTheirName() {
        assertTrue(assertThrows(IllegalArgumentException.class, () -> Main.parse(new String[] {"--nope", "1"}, Map.of()))
                .getMessage().contains("--nope"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> Main.parse(new String[] {"-p"}, Map.of()))
                .getMessage().contains("needs a value"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> Main.parse(new String[] {"serve"}, Map.of()))
                .getMessage().contains("unknown command"));
    }

    @Test
    void badValuesExitWithTheUsageStatus() {
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        int status = Main.run(new String[] {"--n-max", "lots"}, Map.of(), new PrintStream(new ByteArrayOutputStream()),
                new PrintStream(err, true, StandardCharsets.UTF_8));
        assertEquals(Main.EXIT_USAGE, status);
        assertTrue(err.toString(StandardCharsets.UTF_8).contains("--n-max must be a whole number"));
    }

    @Test
    void helpNamesEveryOptionAndItsVariable() {
        String help = Main.help();
        for (String text : new String[] {"--host", "VALVE_HOST", "--n-min", "VALVE_N_MIN", "--client-timeout",
            "-w, --workers", "local --dir", "Exit status"}) {
            assertTrue(help.contains(text), "help lacks " + text);
        }
    }
}
