FROM python:3.11-slim
WORKDIR /app
COPY requirements*.txt ./
# CPU image: the lean variant (xgboost-cpu, no NCCL wheel); see README, Install variants
RUN pip install --no-cache-dir -r requirements-cpu.txt
COPY . .
ENV PM_HOME=/app/data
EXPOSE 8501
CMD ["sh", "-c", "python -m core setup && python app.py --server.address 0.0.0.0 --server.port 8501"]
