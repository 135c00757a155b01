#!/bin/sh
# Seeds the compose stack's Elasticsearch: waits for the cluster, then bulk-loads two log indices and an alias.
set -eu
ES=${ES_URL:-http://elasticsearch:9200}
until curl -fsS "$ES/_cluster/health?wait_for_status=yellow&timeout=5s" >/dev/null; do sleep 2; done
if curl -fsS -o /dev/null "$ES/logs-2026.01"; then echo "already seeded"; exit 0; fi
curl -fsS -X PUT "$ES/logs-2026.01" -H 'Content-Type: application/json' -d '{"mappings": {"properties": {
  "@timestamp": {"type": "date"}, "level": {"type": "keyword"}, "service": {"type": "keyword"},
  "message": {"type": "text", "fields": {"raw": {"type": "keyword"}}}, "ms": {"type": "long"}}}}'
i=0; body=""
while [ $i -lt 500 ]; do
  level=info; [ $((i % 7)) -eq 0 ] && level=error; [ $((i % 11)) -eq 0 ] && level=warn
  body="$body{\"index\":{\"_index\":\"logs-2026.01\"}}
{\"@timestamp\":\"2026-01-$(printf %02d $((1 + i % 28)))T$(printf %02d $((i % 24))):00:00Z\",\"level\":\"$level\",\"service\":\"svc-$((i % 5))\",\"message\":\"request $i handled\",\"ms\":$((i * 13 % 900))}
"
  i=$((i + 1))
done
printf '%s' "$body" | curl -fsS -X POST "$ES/_bulk?refresh=true" -H 'Content-Type: application/x-ndjson' --data-binary @- >/dev/null
curl -fsS -X PUT "$ES/logs-audit" -H 'Content-Type: application/json' -d '{}' >/dev/null
curl -fsS -X POST "$ES/_aliases" -H 'Content-Type: application/json' -d '{"actions": [{"add": {"index": "logs-2026.01", "alias": "logs"}}]}' >/dev/null
echo "seeded logs-2026.01 (500 documents), alias logs"
