#!/usr/bin/env python3
"""A development mail catcher: accepts any SMTP message and writes it to
DIR/<n>.eml, with DIR/<n>.json holding the envelope. Standard library only.

    scripts/mailcatcher.py --listen 127.0.0.1:1025 --dir data/catcher
"""
import argparse
import asyncio
import itertools
import json
import os

counter = itertools.count(1)


async def session(reader, writer, folder):
    def send(line):
        writer.write(line.encode() + b"\r\n")

    send("220 mailcatcher ESMTP")
    mail_from, rcpts = "", []
    while True:
        line = await reader.readline()
        if not line:
            break
        verb = line[:4].upper()
        if verb in (b"EHLO", b"HELO"):
            send("250-mailcatcher\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 SIZE 100000000")
        elif verb == b"MAIL":
            mail_from, rcpts = line.decode(errors="replace").split(":", 1)[1].strip(), []
            send("250 2.1.0 Ok")
        elif verb == b"RCPT":
            rcpts.append(line.decode(errors="replace").split(":", 1)[1].strip())
            send("250 2.1.5 Ok")
        elif verb == b"DATA":
            send("354 End data with <CR><LF>.<CR><LF>")
            await writer.drain()
            data = bytearray()
            while True:
                chunk = await reader.readline()
                if not chunk or chunk == b".\r\n":
                    break
                data += chunk[1:] if chunk.startswith(b".") else chunk
            n = next(counter)
            tmp = os.path.join(folder, f".{n}.tmp")
            with open(tmp, "wb") as f:
                f.write(data)
            with open(os.path.join(folder, f"{n}.json"), "w") as f:
                json.dump({"mail_from": mail_from, "rcpt_to": rcpts}, f)
            os.rename(tmp, os.path.join(folder, f"{n}.eml"))
            send(f"250 2.0.0 Ok: saved as {n}.eml")
        elif verb == b"QUIT":
            send("221 2.0.0 Bye")
            break
        else:
            send("250 2.0.0 Ok")
        await writer.drain()
    await writer.drain()
    writer.close()


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--listen", default="127.0.0.1:1025")
    parser.add_argument("--dir", default="data/catcher")
    args = parser.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    host, port = args.listen.rsplit(":", 1)
    server = await asyncio.start_server(lambda r, w: session(r, w, args.dir), host, int(port))
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
