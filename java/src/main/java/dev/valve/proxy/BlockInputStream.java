package dev.valve.proxy;

import java.io.IOException;
import java.io.InputStream;

/** An input stream defined by its block read; the one-byte read goes through it. */
abstract class BlockInputStream extends InputStream {
    @Override
    public int read() throws IOException {
        byte[] one = new byte[1];
        return read(one, 0, 1) < 0 ? -1 : one[0] & 0xff;
    }

    @Override
    public abstract int read(byte[] buffer, int offset, int length) throws IOException;
}
