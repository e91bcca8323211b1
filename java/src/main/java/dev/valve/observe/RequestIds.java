package dev.valve.observe;

import java.util.HexFormat;
import java.util.concurrent.ThreadLocalRandom;

import io.helidon.http.HeaderName;
import io.helidon.http.HeaderNames;
import io.helidon.http.ServerRequestHeaders;

/**
 * {@code X-Request-Id}: a client's own id is kept when it is a sane token, so a request can be
 * followed from the client through valve to the worker; anything else (too long, spaces, quotes,
 * control characters that would forge log lines) is replaced by a new random id.
 */
public final class RequestIds {
    public static final HeaderName HEADER = HeaderNames.create("X-Request-Id");
    static final int MAX_LENGTH = 128;

    private RequestIds() {
    }

    /** The client's id if it is sane, a new one otherwise. */
    public static String choose(ServerRequestHeaders headers) {
        if (headers.contains(HEADER)) {
            String given = headers.get(HEADER).get();
            if (sane(given)) {
                return given;
            }
        }
        return generate();
    }

    /** 1 to 128 characters of letters, digits and {@code - _ . : + / = @ ~} (UUIDs, base64, trace ids). */
    static boolean sane(String id) {
        int length = id.length();
        if (length == 0 || length > MAX_LENGTH) {
            return false;
        }
        for (int i = 0; i < length; i++) {
            char c = id.charAt(i);
            boolean ok = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
                    || c == '-' || c == '_' || c == '.' || c == ':' || c == '+' || c == '/' || c == '='
                    || c == '@' || c == '~';
            if (!ok) {
                return false;
            }
        }
        return true;
    }

    /** 128 random bits as 32 hex digits: unique enough to follow one request, cheap to make. */
    static String generate() {
        ThreadLocalRandom random = ThreadLocalRandom.current();
        HexFormat hex = HexFormat.of();
        return hex.toHexDigits(random.nextLong()) + hex.toHexDigits(random.nextLong());
    }
}
