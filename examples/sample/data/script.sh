#!/bin/sh
echo "mode bits travel too"
