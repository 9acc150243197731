#!/bin/sh
# As Kafka's own bin/kafka-broker-api-versions.sh (health checks call it by this path).
exec java -Xmx128m -XX:TieredStopAtLevel=1 -cp '/opt/kafka/libs/*' \
  -Dlog4j.configuration=file:/opt/kafka/config/log4j.properties \
  kafka.admin.BrokerApiVersionsCommand "$@"
