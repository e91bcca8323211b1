package dev.valve.proxy;

import java.util.HashSet;
import java.util.Locale;
import java.util.Set;

import io.helidon.http.Header;
import io.helidon.http.HeaderNames;
import io.helidon.http.Headers;

/**
 * Headers that describe one connection rather than the message (RFC 9110, section 7.6.1) and so
 * must not be forwarded in either direction, plus any header the {@code Connection} header names.
 */
final class HopByHop {
    static final Set<String> ALWAYS = Set.of(
            "connection", "keep-alive", "proxy-connection", "proxy-authenticate",
            "proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade");

    private final Set<String> names;

    private HopByHop(Set<String> names) {
        this.names = names;
    }

    /** The hop-by-hop set of one message: the fixed list plus what its Connection header names. */
    static HopByHop of(Headers headers) {
        if (!headers.contains(HeaderNames.CONNECTION)) {
            return new HopByHop(ALWAYS);
        }
        Set<String> names = new HashSet<>(ALWAYS);
        for (String value : headers.get(HeaderNames.CONNECTION).allValues()) {
            addTokens(value, names);
        }
        return new HopByHop(names);
    }

    /** Adds the header names listed in a Connection header value. */
    static void addTokens(String connectionValue, Set<String> names) {
        for (String token : connectionValue.split(",")) {
            String name = token.trim().toLowerCase(Locale.ROOT);
            if (!name.isEmpty()) {
                names.add(name);
            }
        }
    }

    boolean contains(Header header) {
        return names.contains(header.headerName().lowerCase());
    }
}
