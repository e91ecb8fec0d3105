"""kafka-python's own SASL mechanisms (kafka.net.sasl: PLAIN and SCRAM-SHA-256/512 token logic,
independent of Riverbed) against `riverbed serve`, plain and over TLS (Python's ssl module
verifying the server's certificate). Framing: SaslHandshake v1, SaslAuthenticate v0.

Run by sasl_check.sh (which starts the servers): python3 sasl_kafka_python.py PLAIN_PORT TLS_PORT
CERT_PEM. Needs kafka-python >= 3 (checked with 3.0.12)."""
import socket, ssl, struct, sys
from kafka.net.sasl.plain import SaslMechanismPlain
from kafka.net.sasl.scram import SaslMechanismScram

def frame(api, ver, corr, body):
    cid = b'check'
    hdr = struct.pack('>hhih', api, ver, corr, len(cid)) + cid
    msg = hdr + body
    return struct.pack('>i', len(msg)) + msg

def recv(s):
    def exact(n):
        b = b''
        while len(b) < n:
            c = s.recv(n - len(b))
            if not c:
                raise EOFError('closed')
            b += c
        return b
    n = struct.unpack('>i', exact(4))[0]
    return exact(n)[4:]  # drop correlation id

def login(port, mech, user, password, tls):
    s = socket.create_connection(('127.0.0.1', port), timeout=5)
    if tls:
        ctx = ssl.create_default_context(cafile=CERT)
        s = ctx.wrap_socket(s, server_hostname='localhost')
    cfg = dict(sasl_mechanism=mech, sasl_plain_username=user, sasl_plain_password=password,
               security_protocol='SASL_SSL' if tls else 'SASL_PLAINTEXT')
    m = SaslMechanismPlain(**cfg) if mech == 'PLAIN' else SaslMechanismScram(**cfg)
    s.sendall(frame(17, 1, 1, struct.pack('>h', len(mech)) + mech.encode()))
    r = recv(s)
    assert struct.unpack('>h', r[:2])[0] == 0, r
    corr = 2
    try:
        while not m.is_done():
            tok = m.auth_bytes()
            s.sendall(frame(36, 0, corr, struct.pack('>i', len(tok)) + tok))
            corr += 1
            r = recv(s)
            err = struct.unpack('>h', r[:2])[0]
            if err:
                return False, err
            ml = struct.unpack('>h', r[2:4])[0]
            off = 4 + max(ml, 0)
            bl = struct.unpack('>i', r[off:off + 4])[0]
            m.receive(r[off + 4:off + 4 + bl])
        return m.is_authenticated(), 0
    except Exception as e:
        return False, repr(e)
    finally:
        s.close()

fails = 0
n = 0
PLAIN_PORT, TLS_PORT, CERT = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
for port, tls in [(PLAIN_PORT, False), (TLS_PORT, True)]:
    for mech in ['PLAIN', 'SCRAM-SHA-256', 'SCRAM-SHA-512']:
        for user, pw, want in [('alice', 'alice-secret', True), ('alice', 'wrong', False), ('nobody', 'x', False)]:
            got, err = login(port, mech, user, pw, tls)
            n += 1
            fails += got != want
            print(f"{'ok' if got == want else 'FAIL'}: tls={tls} {mech} {user}/{pw}: authenticated={got} error={err}")
print(f"{n - fails} passed, {fails} failed")
sys.exit(1 if fails else 0)
