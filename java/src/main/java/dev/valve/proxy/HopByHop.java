package dev.valve.proxy;

import java.util.HashSet;
import java.util.List;
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
    private static final Set<String> ALWAYS = Set.of(
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
    private static void addTokens(String connectionValue, Set<String> names) {
        for (String token : connectionValue.split(",")) {
            String name = token.trim().toLowerCase(Locale.ROOT);
            if (!name.isEmpty()) {
                names.add(name);
            }
        }
    }

    /** The same for a response from an upstream, whose headers are name/value pairs. */
    static HopByHop of(List<String[]> headers) {
        Set<String> names = new HashSet<>(ALWAYS);
        for (String[] header : headers) {
            if (header[0].equalsIgnoreCase("connection")) {
                addTokens(header[1], names);
            }
        }
        return new HopByHop(names);
    }

    boolean contains(Header header) {
        return names.contains(header.headerName().lowerCase());
    }

    boolean contains(String name) {
        return names.contains(name.toLowerCase(Locale.ROOT));
    }
}
