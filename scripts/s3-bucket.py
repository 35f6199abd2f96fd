"""Waits for an S3-compatible server to answer, then creates a bucket: s3-bucket.py ENDPOINT BUCKET."""
import sys
import time
import urllib.error
import urllib.request

endpoint, bucket = sys.argv[1], sys.argv[2]
deadline = time.time() + 30
while True:
    try:
        urllib.request.urlopen(urllib.request.Request(f"{endpoint}/{bucket}", method="PUT"), timeout=5)
        break
    except (urllib.error.URLError, ConnectionError) as e:
        if time.time() > deadline:
            sys.exit(f"the S3 server at {endpoint} did not answer within 30 s: {e}")
        time.sleep(0.2)
