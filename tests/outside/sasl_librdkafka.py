"""librdkafka's SASL (through confluent-kafka) against `riverbed serve`: PLAIN and
SCRAM-SHA-256/512, SASL_PLAINTEXT and SASL_SSL. Requests after authentication (Metadata) are
not needed: librdkafka's `broker` debug log shows its broker state going from AUTH_REQ to UP
only after a successful login, and its error callback reports a failed one.

Usage: python3 sasl_librdkafka.py PLAIN_PORT TLS_PORT CERT_PEM (ports of sasl_check.sh's servers)."""
import logging, sys, time
from confluent_kafka.admin import AdminClient

PLAIN_PORT, TLS_PORT, CERT = sys.argv[1], sys.argv[2], sys.argv[3]


class Capture(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def login(port, tls, mech, user, pw):
    cap = Capture()
    log = logging.getLogger(f"rdk-{port}-{mech}-{pw}")
    log.addHandler(cap)
    log.setLevel(logging.DEBUG)
    errors = []
    conf = {
        'bootstrap.servers': f'127.0.0.1:{port}',
        'security.protocol': 'SASL_SSL' if tls else 'SASL_PLAINTEXT',
        'sasl.mechanism': mech, 'sasl.username': user, 'sasl.password': pw,
        'debug': 'security,broker', 'error_cb': lambda e: errors.append(str(e)),
    }
    if tls:
        conf.update({'ssl.ca.location': CERT, 'ssl.endpoint.identification.algorithm': 'none'})
    a = AdminClient(conf, logger=log)
    deadline = time.time() + 5
    ok = failed = False
    while time.time() < deadline and not (ok or failed):
        a.poll(0.2)
        # The broker thread leaves AUTH_REQ for UP only after a successful login.
        ok = any('AUTH_REQ -> UP' in line for line in cap.lines)
        failed = any('Authentication failed' in e or 'SASL authentication error' in e for e in errors)
    return ok and not failed


fails = n = 0
for port, tls in [(PLAIN_PORT, False), (TLS_PORT, True)]:
    for mech in ['PLAIN', 'SCRAM-SHA-256', 'SCRAM-SHA-512']:
        for user, pw, want in [('alice', 'alice-secret', True), ('alice', 'wrong', False)]:
            got = login(port, tls, mech, user, pw)
            n += 1
            fails += got != want
            print(f"{'ok' if got == want else 'FAIL'}: librdkafka tls={tls} {mech} {user}/{pw}: authenticated={got}")
print(f"{n - fails} passed, {fails} failed")
sys.exit(1 if fails else 0)
