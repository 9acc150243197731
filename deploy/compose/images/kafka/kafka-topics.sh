#!/bin/sh
# As Kafka's own bin/kafka-topics.sh.
exec java -Xmx128m -XX:TieredStopAtLevel=1 -cp '/opt/kafka/libs/*' \
  -Dlog4j.configuration=file:/opt/kafka/config/log4j.properties \
  org.apache.kafka.tools.TopicCommand "$@"
