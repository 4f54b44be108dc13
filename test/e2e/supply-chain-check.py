"""Independent checks of unikctl's signed images (test/e2e/supply-chain.test.ts), run with .venv-tools/bin/python:

  dsse ENVELOPE PUBKEY_PEM KEYID   verify a DSSE envelope with securesystemslib (its DSSE Envelope and Ed25519 key)
                                   and print the in-toto Statement it carries
  sbom FILE...                     validate CycloneDX JSON documents against the official schema shipped by
                                   cyclonedx-python-lib (strict: no properties outside the spec)

Exit 0 and JSON on stdout when everything verifies; exit 1 with the reason on stderr otherwise.
"""
import json
import sys


def dsse(envelope_file: str, pubkey_file: str, keyid: str) -> None:
    from cryptography.hazmat.primitives.serialization import load_pem_public_key
    from securesystemslib.dsse import Envelope
    from securesystemslib.signer import SSlibKey

    with open(pubkey_file, "rb") as f:
        public = load_pem_public_key(f.read())
    key = SSlibKey.from_crypto(public, keyid=keyid, scheme="ed25519")
    with open(envelope_file, "rb") as f:
        env = Envelope.from_dict(json.load(f))
    accepted = env.verify([key], 1)
    print(json.dumps({"verified": sorted(accepted.keys()), "payloadType": env.payload_type, "statement": json.loads(env.payload)}))


def sbom(files: list) -> None:
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    validator = JsonStrictValidator(SchemaVersion.V1_5)
    results = {}
    for path in files:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        error = validator.validate_str(text)
        if error is not None:
            print(f"{path}: {error}", file=sys.stderr)
            sys.exit(1)
        results[path] = len(json.loads(text).get("components", []))
    print(json.dumps({"valid": results, "schema": "CycloneDX 1.5 (strict)"}))


if __name__ == "__main__":
    try:
        if sys.argv[1] == "dsse":
            dsse(sys.argv[2], sys.argv[3], sys.argv[4])
        elif sys.argv[1] == "sbom":
            sbom(sys.argv[2:])
        else:
            raise SystemExit(f"unknown check {sys.argv[1]}")
    except SystemExit:
        raise
    except Exception as e:  # the reason, for the test's failure message
        print(f"{type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
